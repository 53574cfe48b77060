"""View helpers for the Streamlit app (``app.py``): UI strings, safe rendering of learner
text, and the small pure computations the pages show (score change, step mastery, CSV).

UI strings live in ``calmcall/ui_text.yaml`` (one entry per key, all five UI languages).
Rules for what reaches the page:

* Learner text (answers, chat questions, names) is never rendered as Markdown or HTML:
  it goes through :func:`html.escape` into ``st.html`` (which DOMPurify sanitises too), or
  into ``st.text``. Nothing a learner types can become markup or script.
* Library text (titles, quotes, tips) is ours, but it is still escaped for Markdown so a
  stray ``*`` or ``#`` in an article cannot reformat the page.

Everything here except the ``render_*`` functions is pure and testable without Streamlit.
"""

from __future__ import annotations

import csv
import html
import io
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

UI_LANGS = ("en", "sv", "hu", "it", "nl")
NATIVE_NAMES = {"en": "English", "sv": "Svenska", "hu": "Magyar", "it": "Italiano", "nl": "Nederlands"}
PAGES = ("practice", "ask", "library", "progress")
TEXT_FILE = Path(__file__).with_name("ui_text.yaml")
MAX_LEARNER_CHARS = 100
# Icons are Streamlit's bundled Material Symbols (no emoji font needed on the client).
PAGE_ICONS = {"practice": ":material/record_voice_over:", "ask": ":material/forum:",
              "library": ":material/menu_book:", "progress": ":material/monitoring:"}
STATUS_ICONS = {"covered": ":green[:material/check_circle:]", "partly": ":orange[:material/timelapse:]",
                "missing": ":red[:material/cancel:]"}
BONUS_MISSING_ICON = ":gray[:material/radio_button_unchecked:]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=])")

CSS = """
<style>
.cc-answer { white-space: pre-wrap; line-height: 1.6; padding: .75rem 1rem;
  border-radius: .5rem; border: 1px solid rgba(128,128,128,.25); overflow-wrap: anywhere; }
.cc-evidence { white-space: pre-wrap; overflow-wrap: anywhere; margin: .1rem 0 .2rem 0; }
.cc-evidence::before { content: "“"; opacity: .6; }
.cc-evidence::after { content: "”"; opacity: .6; }
mark.cc-covered { background: rgba(33,195,84,.22); color: inherit; padding: 0 .15rem; border-radius: .2rem; }
mark.cc-partly { background: rgba(255,189,69,.30); color: inherit; padding: 0 .15rem; border-radius: .2rem; }
mark.cc-anti { background: rgba(255,75,75,.22); color: inherit; padding: 0 .15rem; border-radius: .2rem; }
.cc-tag { font-size: .72rem; opacity: .75; margin-left: .3rem; vertical-align: super; }
[data-testid="stAppDeployButton"] { display: none; }
</style>
"""


# -- strings ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, str]]:
    """All UI strings: ``{key: {lang: text}}`` (read once per process)."""
    # libyaml's safe loader (through the parsed cache): the pure-Python one took ~0.3 s of the first page
    from .knowledge import load_yaml

    data = load_yaml(TEXT_FILE.read_text(encoding="utf-8"))
    return {str(k): {str(lang): str(v) for lang, v in entry.items()} for k, entry in data.items()}


def t(key: str, lang: str, **values) -> str:
    """The UI string ``key`` in ``lang`` (English if missing), formatted with ``values``."""
    entry = texts().get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry.get("en", key)
    return text.format(**values) if values else text


def lang_name(code: str, lang: str) -> str:
    """The name of language ``code`` in the UI language ``lang`` ("svenska", "Swedish")."""
    entry = texts().get(f"lang_{code}")
    return (entry.get(lang) or entry["en"]) if entry else code


def _cap(label: str) -> str:
    """First letter up, for a language name used as a label ("svenska" -> "Svenska")."""
    return label[:1].upper() + label[1:]


def pick_language(query_value: str | None, default: str = "en") -> str:
    value = (query_value or "").strip().lower()[:5]
    return value if value in UI_LANGS else default


# -- escaping --------------------------------------------------------------------------
def md_escape(text: str) -> str:
    """Backslash-escape Markdown punctuation in library text (titles, quotes, tips)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def esc(text: str) -> str:
    """HTML-escape learner text for ``st.html`` (quotes included)."""
    return html.escape(str(text), quote=True)


def evidence_html(sentence: str, kind: str = "covered") -> str:
    return f'<div class="cc-evidence"><mark class="cc-{kind}">{esc(sentence)}</mark></div>'


def highlighted_answer_html(answer: str, marks: list[tuple[str, str, str]]) -> str:
    """The learner's answer, escaped, with each ``(sentence, kind, label)`` highlighted
    where the sentence occurs verbatim. Overlapping or missing sentences are skipped."""
    rank = {"anti": 0, "covered": 1, "partly": 2}
    merged: dict[str, tuple[str, list[str]]] = {}  # one sentence can carry several steps
    for sentence, kind, label in marks:
        if not sentence:
            continue
        old_kind, labels = merged.get(sentence, (kind, []))
        best = min(old_kind, kind, key=lambda k: rank.get(k, 3))
        merged[sentence] = (best, labels + [label] if label not in labels else labels)
    spans: list[tuple[int, int, str, str]] = []
    for sentence, (kind, labels) in merged.items():
        label = " · ".join(labels)
        start = answer.find(sentence)
        while start != -1 and any(s < start + len(sentence) and start < e for s, e, _, _ in spans):
            start = answer.find(sentence, start + 1)
        if start != -1:
            spans.append((start, start + len(sentence), kind, label))
    spans.sort()
    out, pos = [], 0
    for start, end, kind, label in spans:
        out.append(esc(answer[pos:start]))
        out.append(
            f'<mark class="cc-{kind}" title="{esc(label)}">{esc(answer[start:end])}</mark>'
            f'<span class="cc-tag">{esc(label)}</span>'
        )
        pos = end
    out.append(esc(answer[pos:]))
    return f'<div class="cc-answer">{"".join(out)}</div>'


# -- learners --------------------------------------------------------------------------
def normalize_learner(name: str | None) -> str:
    """A learner id as typed: control characters removed, spaces collapsed, NFC.
    Returns "" for none; raises ValueError when it is too long to be a name."""
    value = unicodedata.normalize("NFC", _CONTROL.sub(" ", name or ""))
    value = " ".join(value.split())
    if len(value) > MAX_LEARNER_CHARS:
        raise ValueError(MAX_LEARNER_CHARS)
    return value


# -- practice --------------------------------------------------------------------------
def question_text(question, lang: str) -> str:
    return question.text.get(lang) or question.text.get("en") or question.id


def statuses(report: dict | None) -> dict[str, str]:
    """``{step: status}`` of a report dict (a GradeReport dumped to JSON)."""
    if not report:
        return {}
    return {v["step"]: v["status"] for v in report.get("steps", [])}


def compare(previous: dict | None, current: dict) -> dict | None:
    """What changed since the previous attempt at the same question."""
    if not previous:
        return None
    before, after = statuses(previous), statuses(current)
    titles = {v["step"]: v["title"] for v in current.get("steps", [])}
    order = list(after)
    gained = [s for s in order if after[s] == "covered" and before.get(s) != "covered"]
    lost = [s for s in order if before.get(s) == "covered" and after[s] != "covered"]
    return {
        "delta": int(current.get("score", 0)) - int(previous.get("score", 0)),
        "previous_score": int(previous.get("score", 0)),
        "gained": [titles[s] for s in gained],
        "lost": [titles[s] for s in lost],
    }


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def char_count_note(answer: str, max_chars: int) -> tuple[int, int] | None:
    """(length, limit) when the answer is longer than the grader reads, else None."""
    n = len(answer.strip())
    return (n, max_chars) if n > max_chars else None


# -- progress ---------------------------------------------------------------------------
def mastery(attempts: list[dict], catalogue, lang: str) -> list[dict]:
    """Per step: how often it was covered in attempts at questions that expect it, and
    whether the latest such attempt covered it. Steps never expected are left out."""
    rows: dict[str, dict] = {}
    for a in attempts:
        q = catalogue.questions.get(a.get("question"))
        if q is None:
            continue
        covered = set(a.get("covered") or [])
        for sid in q.expected:
            step = catalogue.steps.get(sid)
            if step is None:
                continue
            row = rows.setdefault(sid, {"step": sid, "title": step.t("title", lang), "expected": 0,
                                        "covered": 0, "latest": False})
            row["expected"] += 1
            row["covered"] += sid in covered
            row["latest"] = sid in covered
    out = list(rows.values())
    for row in out:
        row["rate"] = row["covered"] / row["expected"] if row["expected"] else 0.0
    order = list(catalogue.steps)
    return sorted(out, key=lambda r: (-r["rate"], order.index(r["step"])))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a cell a learner wrote must not start a formula.
    return "'" + text if text.startswith(_FORMULA) else text


def attempts_csv(attempts: list[dict]) -> bytes:
    """The learner's attempts as CSV (UTF-8 with BOM so spreadsheets read accents)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["attempt_id", "created_at", "learner_id", "question", "language", "score",
                     "covered_steps", "answer"])
    for a in attempts:
        writer.writerow([_cell(a.get("id")), _cell(a.get("created_at")), _cell(a.get("learner_id")),
                         _cell(a.get("question")), _cell(a.get("language")), _cell(a.get("score")),
                         _cell(";".join(a.get("covered") or [])), _cell(a.get("answer"))])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def csv_filename(learner: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", unicodedata.normalize("NFKD", learner)).strip("-")[:40]
    return f"calmcall-attempts-{slug or 'learner'}.csv"


# -- rendering (Streamlit) ------------------------------------------------------------------
# Warnings a learner must not miss come first, in red for what disqualifies an answer.
SEVERE_ALERTS = ("harm", "injection")
ALERT_ICONS = {"harm": ":material/block:", "injection": ":material/gpp_bad:", "off_topic": ":material/explore_off:",
               "copied": ":material/content_copy:", "sarcasm": ":material/sentiment_dissatisfied:",
               "keyword_list": ":material/format_list_bulleted:", "repetitive": ":material/repeat:",
               "too_short": ":material/short_text:", "anti_pattern": ":material/warning:",
               "language": ":material/translate:", "truncated": ":material/content_cut:"}


def article_title(article, lang: str) -> str:
    """An article's title for a reader of ``lang``: its own title, or the English one for
    English readers (titles are not translated into the other languages)."""
    if article is None:
        return ""
    if lang == "en" and article.language != "en" and article.title_en:
        return article.title_en
    return article.title


def source_label(pid: str, knowledge, lang: str) -> str:
    """``Article title · 004#p7``: which article a passage is from, not only its id."""
    article = knowledge.articles.get(pid.split("#")[0]) if knowledge is not None else None
    title = article_title(article, lang)
    return f"{title} · {pid}" if title else pid


def sources_label(pids: list[str], knowledge, lang: str) -> str:
    """Several passages, each article named once: ``Title · 001#p27, 001#p28; Other · 000#p6``."""
    groups: dict[str, list[str]] = {}
    for pid in pids:
        groups.setdefault(pid.split("#")[0], []).append(pid)
    parts = []
    for ids in groups.values():
        title = source_label(ids[0], knowledge, lang).rsplit(" · ", 1)[0] if knowledge is not None else ""
        parts.append(f"{title} · {', '.join(ids)}" if title and title != ids[0] else ", ".join(ids))
    return "; ".join(parts)


def passage_in(c: dict, lang: str, knowledge=None) -> tuple[str, str]:
    """(text, language) of a cited passage as a reader of ``lang`` should read it: the
    original when it is in ``lang``, else our translation into ``lang``, else English."""
    if c["language"] == lang:
        return c["quote"], lang
    passage = knowledge.passages.get(c["passage"]) if knowledge is not None else None
    if passage is not None:
        if passage.translations.get(lang):
            return passage.translations[lang], lang
        english = passage.text_en
    else:  # no knowledge at hand: what the citation carries
        if lang == "en" and c.get("quote_en"):
            return c["quote_en"], "en"
        if c.get("translation"):
            return c["translation"], lang
        english = c.get("quote_en", "")
    return (english, "en") if english else (c["quote"], c["language"])


def render_citation(st, c: dict, lang: str, knowledge=None, source: bool = True) -> None:
    """One quoted passage, once: in the reader's language, with the original a click away.
    ``source``: name the article and passage above the quote (off where a label already does)."""
    text, shown = passage_in(c, lang, knowledge)
    head = f":gray[:material/format_quote:] **{md_escape(source_label(c['passage'], knowledge, lang))}**" \
        if source else ""
    if shown != lang:  # no translation into the reader's language yet
        head += f"{' · ' if head else ''}*{lang_name(shown, lang)}, {t('no_translation', lang)}*"
    st.markdown((head + "\n\n" if head else "") + "> " + md_escape(text))
    if shown != c["language"]:
        with st.expander(t("show_original", lang, language=lang_name(c["language"], lang)),
                         icon=":material/translate:"):
            st.markdown("> " + md_escape(c["quote"]))


def render_conflict(st, note: dict, lang: str, knowledge=None) -> None:
    with st.container(border=True):
        lines = [f":orange[:material/balance:] **{t('conflict', lang)}:** {md_escape(note['topic'])}"]
        for n, side in enumerate(note.get("sides", []), start=1):
            sources = sources_label([p["passage"] for p in side.get("passages", [])], knowledge, lang)
            lines.append(f"{n}\\. {md_escape(side['position'])} — *{md_escape(sources)}*")
        st.markdown("\n\n".join(lines))
        with st.expander(t("show_quotes", lang)):
            for side in note.get("sides", []):
                for p in side.get("passages", []):
                    render_citation(st, p, lang, knowledge)


def _status_line(v: dict, lang: str) -> str:
    icon = STATUS_ICONS.get(v["status"], STATUS_ICONS["missing"])
    status = t("status_" + v["status"], lang)
    return f"{icon} **{md_escape(v['title'])}** · *{status}*"


def feedback_tips(report: dict) -> list[str]:
    """The tips not already shown in the summary (alerts and the top fix)."""
    summary = report.get("summary") or {}
    shown = {a["message"] for a in summary.get("alerts", [])} | {summary.get("top_fix", "")}
    return [tip for tip in report.get("tips", []) if tip not in shown]


def render_feedback(st, fb: dict, lang: str, knowledge=None, catalogue=None) -> None:
    """A graded attempt, summary first: score, the one fix that matters most and every
    warning; then the required steps to add (one line each, the article on demand), the
    things to avoid, and the full checklist with the learner's own sentences. The report
    is written in the UI language (``coach.grade(..., feedback_lang=lang)``)."""
    report = fb["report"]
    summary = report.get("summary") or {}
    change = fb.get("change")
    steps = report.get("steps", [])
    required = [v for v in steps if v["required"]]
    n_covered = sum(v["status"] == "covered" for v in required)

    st.subheader(t("feedback_title", lang))
    with st.container(border=True, key="cc_summary"):
        c1, c2, c3 = st.columns(3)
        c1.metric(t("score", lang), f"{report['score']}/100",
                  delta=None if not change or not change["delta"] else f"{change['delta']:+d}")
        c2.metric(t("required_covered", lang), f"{n_covered}/{len(required)}")
        c3.metric(t("anti_patterns_found", lang), str(len(report.get("anti_patterns", [])) + len(report.get("harms", []))))
        if summary.get("headline"):
            st.markdown(f"**{md_escape(summary['headline'])}**")
        alerts = summary.get("alerts", [])
        for a in alerts:
            box = st.error if a["kind"] in SEVERE_ALERTS else st.warning
            box(md_escape(a["message"]), icon=ALERT_ICONS.get(a["kind"], ":material/warning:"))
        top_fix = summary.get("top_fix", "")
        if top_fix and top_fix not in {a["message"] for a in alerts}:
            st.info(f"**{t('top_fix', lang)}:** {md_escape(top_fix)}", icon=":material/flag:")
        if report.get("flags", {}).get("truncated") and fb.get("too_long"):
            n, limit = fb["too_long"]
            st.warning(t("answer_truncated", lang, n=f"{n:,}", limit=f"{limit:,}"))
        if change is not None:
            _render_change(st, change, report, lang)
        if fb.get("elapsed") is not None:
            limit = fb.get("limit")
            if limit and fb["elapsed"] > limit:
                st.warning(t("timer_over", lang, used=format_seconds(fb["elapsed"]), limit=format_seconds(limit)),
                           icon=":material/alarm:")
            else:
                st.caption(":material/timer: " + t("timer_used", lang, used=format_seconds(fb["elapsed"])))
    notes = [md_escape(w) for w in report.get("warnings", []) if "characters" not in w]  # length: above
    if report.get("language") and report["language"] != lang:
        notes.append(t("answer_language", lang, language=lang_name(report["language"], lang)))
    if notes:
        st.caption("  \n".join(notes))

    gaps = [v for v in required if v["status"] != "covered"]
    if gaps:
        st.markdown(f"#### {t('fix_title', lang)}")
        st.caption(t("fix_intro", lang))
        shown: set[str] = set()  # a passage that teaches two missing steps is quoted once
        for v in gaps:
            _render_gap(st, v, lang, knowledge, catalogue, shown)

    if report.get("anti_patterns"):
        st.markdown(f"#### {t('anti_patterns', lang)}")
        for a in report["anti_patterns"]:
            with st.container(border=True):
                st.markdown(f":red[:material/warning:] **{md_escape(a['title'])}**")
                st.html(evidence_html(a["evidence"], "anti"))
                if a.get("passages"):
                    with st.expander(t("why_avoid", lang)):
                        for c in a["passages"]:
                            render_citation(st, c, lang, knowledge)

    st.markdown(f"#### {t('checklist', lang)}")
    with st.container(border=True, key="cc_checklist"):
        st.markdown(f"**{t('required_steps', lang)}**")
        for v in required:
            _render_check(st, v, lang)
        bonus = [v for v in steps if not v["required"]]
        if bonus:
            st.markdown(f"**{t('bonus_steps', lang)}**")
            for v in bonus:
                if v["status"] != "missing":
                    _render_check(st, v, lang)
            missing = [v for v in bonus if v["status"] == "missing"]
            if missing:
                st.markdown(f"{BONUS_MISSING_ICON} *{t('optional_missing', lang)}:* "
                            + ", ".join(md_escape(v["title"]) for v in missing))
        if report.get("extra_steps"):
            st.markdown(f"**{t('extra_steps', lang)}**")
            for h in report["extra_steps"]:
                st.markdown(f"{STATUS_ICONS['covered']} {md_escape(h['title'])}")
                if h.get("evidence"):
                    st.html(evidence_html(h["evidence"]))

    if report.get("conflicts"):
        st.markdown(f"#### {t('conflicts', lang)}")
        st.caption(t("conflicts_intro", lang))
        for note in report["conflicts"]:
            render_conflict(st, note, lang, knowledge)

    tips = feedback_tips(report)
    if tips:
        with st.expander(t("all_tips", lang, n=len(tips)), icon=":material/tips_and_updates:"):
            st.markdown("\n".join(f"- {md_escape(tip)}" for tip in tips))

    marks = []
    for v in steps:
        if v.get("evidence") and v["status"] != "missing":
            marks.append((v["evidence"], v["status"], v["title"]))
    for a in report.get("anti_patterns", []):
        marks.append((a["evidence"], "anti", a["title"]))
    for h in report.get("harms", []):
        marks.append((h["evidence"], "anti", h["title"]))
    with st.expander(t("your_answer_marked", lang)):
        st.html(highlighted_answer_html(fb.get("graded_text") or fb.get("answer", ""), marks))

    with st.expander(t("model_answer", lang)):
        st.markdown(md_escape(report.get("model_answer", "")))


def _render_change(st, change: dict, report: dict, lang: str) -> None:
    lines = [t("change_score", lang, before=change["previous_score"], after=report["score"],
               delta=f"{change['delta']:+d}")]
    if change["gained"]:
        lines.append(t("change_gained", lang, steps=md_escape(", ".join(change["gained"]))))
    if change["lost"]:
        lines.append(t("change_lost", lang, steps=md_escape(", ".join(change["lost"]))))
    if not change["gained"] and not change["lost"]:
        lines.append(t("change_same_steps", lang))
    box = st.success if change["delta"] > 0 else st.info if change["delta"] == 0 else st.warning
    box("  \n".join(lines), icon=":material/compare_arrows:")


def _render_gap(st, v: dict, lang: str, knowledge, catalogue, shown: set[str]) -> None:
    """A required step that is missing or thin: title, one line why, the article on demand
    (passages already quoted for an earlier step are named, not quoted again)."""
    step = catalogue.steps.get(v["step"]) if catalogue is not None else None
    why = step.t("description", lang) if step is not None else ""
    with st.container(border=True, key=f"cc_gap_{v['step']}"):
        st.markdown(_status_line(v, lang) + (f"  \n{md_escape(why)}" if why else ""))
        if v["status"] == "partly" and v.get("evidence"):
            st.html(evidence_html(v["evidence"], "partly"))
        passages = v.get("passages") or []
        new = [c for c in passages if c["passage"] not in shown]
        if new:
            with st.expander(t("articles_say", lang).rstrip(" :"), icon=":material/menu_book:"):
                for c in new:
                    render_citation(st, c, lang, knowledge)
            shown.update(c["passage"] for c in new)
        elif passages:
            st.caption(t("sources_list", lang, ids=sources_label([c["passage"] for c in passages], knowledge, lang)))



def _render_check(st, v: dict, lang: str) -> None:
    """One checklist line: title and status in the UI language, the learner's sentence."""
    st.markdown(_status_line(v, lang))
    if v.get("evidence") and v["status"] != "missing":
        st.html(evidence_html(v["evidence"], v["status"]))


_CITE = re.compile(r"\[(\d{3}#p\d+)\]")


@lru_cache(maxsize=1)
def _answer_phrases() -> tuple[dict, dict[str, str]]:
    """The answerer's phrases and, for each of their texts in any language, its key."""
    from .prompts import load_prompt

    try:
        phrases = load_prompt("answer")
    except FileNotFoundError:
        return {}, {}
    keys = {str(text): key for key, entry in phrases.items() if isinstance(entry, dict)
            for text in entry.values() if isinstance(text, str) and "{" not in text}
    return phrases, keys


def note_text(note: str, lang: str) -> str:
    """A note of ``coach.ask`` in the UI language: the answerer writes its notes (follow-up,
    language) in the question's language, which need not be the screen's."""
    from .prompts import localized

    phrases, keys = _answer_phrases()
    key = keys.get(note)
    if key:
        return localized(phrases, key, lang)
    if note.startswith("follow-up:"):  # an answerer that writes the note in English only
        return t("ask_followup", lang)
    return note


def number_citations(lines: list[str], cites: list[dict]) -> tuple[list[str], list[tuple[int, dict]]]:
    """Answer lines as Markdown with ``[004#p7]`` replaced by footnote numbers ``[1]``, and
    the citations in that numbering (cited passages first, in order of appearance)."""
    by_id = {c["passage"]: c for c in cites}
    order: list[str] = []
    out = []
    for line in lines:
        parts = _CITE.split(line)  # text, id, text, id, …
        for pid in parts[1::2]:
            if pid not in order:
                order.append(pid)
        md = [_md_line(parts[0]) if parts[0].strip() else ""]
        for i in range(1, len(parts), 2):
            md.append(f" \\[{order.index(parts[i]) + 1}\\]")
            if parts[i + 1].strip():
                md.append(" " + md_escape(parts[i + 1]))
        out.append("".join(md).strip())
    order += [pid for pid in by_id if pid not in order]
    return out, [(n, by_id[pid]) for n, pid in enumerate(order, start=1) if pid in by_id]



def render_ask_result(st, result: dict, lang: str, knowledge=None) -> None:
    """An answer from ``coach.ask``: the text with numbered sources, conflicts highlighted,
    each source (article title, passage in the UI language) one click away."""
    if not result.get("in_scope", True):
        st.info(md_escape(result["answer"]), icon=":material/explore_off:")
        for note in result.get("notes", []):
            st.caption(md_escape(note_text(note, lang)))
        return
    if result.get("advice"):
        render_advice(st, result, lang, knowledge)
        return
    body = [ln for ln in result["answer"].splitlines() if ln.strip()]
    if result.get("conflicts"):
        # The conflicts are shown in their own highlighted boxes below the advice.
        cut = next((i for i, ln in enumerate(body) if i > 0 and _is_conflict_line(ln)), None)
        if cut is not None:
            body = body[:cut]
    lines, numbered = number_citations(body, result.get("citations", []))
    st.markdown("\n\n".join(lines))
    for note in result.get("conflicts", []):
        render_conflict(st, note, lang, knowledge)
    if numbered:
        st.caption(t("cited_in_answer", lang))
        for n, c in numbered:
            with st.expander(f"\\[{n}\\] {md_escape(source_label(c['passage'], knowledge, lang))}",
                             icon=":material/format_quote:"):
                render_citation(st, c, lang, knowledge, source=False)
    for note in result.get("notes", []):
        st.caption(md_escape(note_text(note, lang)))


def render_advice(st, result: dict, lang: str, knowledge=None) -> None:
    """Ask's answer as steps a trainer can copy into a session plan: numbered, each with
    why and a line to say, its sources collapsed; conflicts; a one-page handout to download."""
    numbers: dict[str, int] = {}  # passage id -> its footnote number, in order of first use
    for n, a in enumerate(result["advice"], start=1):
        marks = []
        for c in a.get("citations", []):
            numbers.setdefault(c["passage"], len(numbers) + 1)
            marks.append(f"\\[{numbers[c['passage']]}\\]")
        st.markdown(f"**{n}. {md_escape(a['title'])}** — {md_escape(a['why'])} {' '.join(marks)}".rstrip())
        if a.get("line"):
            st.markdown(f"> {t('advice_say', lang)} *{md_escape(a['line'])}*")
    by_id = {c["passage"]: c for a in result["advice"] for c in a.get("citations", [])}
    if numbers:
        st.caption(t("cited_in_answer", lang))
    for pid, n in numbers.items():  # each source once, collapsed
        with st.expander(f"\\[{n}\\] {md_escape(source_label(pid, knowledge, lang))}", icon=":material/format_quote:"):
            render_citation(st, by_id[pid], lang, knowledge, source=False)
    for note in result.get("conflicts", []):
        render_conflict(st, note, lang, knowledge)
    for note in result.get("notes", []):
        st.caption(md_escape(note_text(note, lang)))
    from .handout import handout
    from .models import AskResult

    st.download_button(t("advice_handout", lang), handout(AskResult.model_validate(result), lang),
                       file_name="calmcall-handout.md", mime="text/markdown", icon=":material/download:",
                       key=f"handout_{abs(hash(result['question'])) % 10**8}")


@lru_cache(maxsize=1)
def _conflict_openings() -> tuple[str, ...]:
    """How the offline answerer opens its conflict section, in every language it writes."""
    from .prompts import load_prompt

    try:
        templates = load_prompt("answer").get("conflict", {})
    except FileNotFoundError:
        return ()
    return tuple(v.split("{", 1)[0].strip().lower() for v in templates.values() if v.split("{", 1)[0].strip())


def _is_conflict_line(line: str) -> bool:
    low = line.strip().lower()
    return any(low.startswith(opening) for opening in _conflict_openings())


_LIST = re.compile(r"^(\d+)\.\s+")


def _md_line(line: str) -> str:
    """One answer line as Markdown: numbered steps and bullets stay lists, the rest is
    escaped text (an optional LLM backend's output is not trusted to be clean Markdown)."""
    m = _LIST.match(line)
    if m:
        return f"{m.group(1)}. " + md_escape(line[m.end():])
    if line.startswith("- "):
        return "- " + md_escape(line[2:])
    return md_escape(line)
