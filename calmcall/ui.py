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

import yaml

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
    data = yaml.safe_load(TEXT_FILE.read_text(encoding="utf-8"))
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
def render_citation(st, c: dict, lang: str, articles: dict | None = None) -> None:
    """One quoted passage (one element): the original, then English and the reader's language."""
    article = (articles or {}).get(c["article"])
    source = f"{c['passage']}"
    if article is not None:
        source += f" · {article.title}"
    parts = [f"**{md_escape(source)}** · {lang_name(c['language'], lang)}", "> " + md_escape(c["quote"])]
    if c["language"] != "en" and c.get("quote_en"):
        parts.append(f"*{_cap(lang_name('en', lang))}:* " + md_escape(c["quote_en"]))
    if c.get("translation"):
        parts.append(f"*{t('translation', lang)}:* " + md_escape(c["translation"]))
    st.markdown("\n\n".join(parts))


def render_conflict(st, note: dict, lang: str, articles: dict | None = None) -> None:
    with st.container(border=True):
        lines = [f":orange[:material/balance:] **{t('conflict', lang)}:** {md_escape(note['topic'])}"]
        for n, side in enumerate(note.get("sides", []), start=1):
            ids = ", ".join(p["passage"] for p in side.get("passages", []))
            lines.append(f"{n}\\. {md_escape(side['position'])} — *{md_escape(ids)}*")
        st.markdown("\n\n".join(lines))
        with st.expander(t("show_quotes", lang)):
            for side in note.get("sides", []):
                for p in side.get("passages", []):
                    render_citation(st, p, lang, articles)


def render_feedback(st, fb: dict, lang: str, articles: dict | None = None) -> None:
    """The graded attempt: score and change, checklist with the learner's own sentences,
    missing steps with their sources, anti-patterns, conflicts, tips and a model answer."""
    report = fb["report"]
    change = fb.get("change")
    steps = report.get("steps", [])
    required = [v for v in steps if v["required"]]
    n_covered = sum(v["status"] == "covered" for v in required)

    st.subheader(t("feedback_title", lang))
    c1, c2, c3 = st.columns(3)
    c1.metric(t("score", lang), f"{report['score']}/100",
              delta=None if not change or not change["delta"] else f"{change['delta']:+d}")
    c2.metric(t("required_covered", lang), f"{n_covered}/{len(required)}")
    c3.metric(t("anti_patterns_found", lang), str(len(report.get("anti_patterns", []))))
    if fb.get("elapsed") is not None:
        limit = fb.get("limit")
        if limit and fb["elapsed"] > limit:
            st.warning(t("timer_over", lang, used=format_seconds(fb["elapsed"]), limit=format_seconds(limit)),
                       icon=":material/alarm:")
        else:
            st.caption(":material/timer: " + t("timer_used", lang, used=format_seconds(fb["elapsed"])))

    if change is not None:
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

    if report.get("flags", {}).get("truncated") and fb.get("too_long"):
        n, limit = fb["too_long"]
        st.warning(t("answer_truncated", lang, n=f"{n:,}", limit=f"{limit:,}"))
    for w in report.get("warnings", []):
        if "characters" not in w:  # the length warning is shown above, in the UI language
            st.caption(md_escape(w))
    if report.get("language") and report["language"] != lang:
        st.caption(t("feedback_language", lang, language=lang_name(report["language"], lang)))

    st.markdown(f"#### {t('checklist', lang)}")
    st.markdown(f"**{t('required_steps', lang)}**")
    for v in required:
        _render_step(st, v, lang, articles)
    bonus = [v for v in steps if not v["required"]]
    if bonus:
        st.markdown(f"**{t('bonus_steps', lang)}**")
        for v in bonus:
            if v["status"] != "missing":
                _render_step(st, v, lang, articles)
        _render_missing_bonus(st, [v for v in bonus if v["status"] == "missing"], lang, articles)

    if report.get("extra_steps"):
        st.markdown(f"**{t('extra_steps', lang)}**")
        for h in report["extra_steps"]:
            st.markdown(f"{STATUS_ICONS['covered']} {md_escape(h['title'])}")
            if h.get("evidence"):
                st.html(evidence_html(h["evidence"]))

    if report.get("anti_patterns"):
        st.markdown(f"#### {t('anti_patterns', lang)}")
        for a in report["anti_patterns"]:
            with st.container(border=True):
                st.markdown(f":red[:material/warning:] **{md_escape(a['title'])}**")
                st.html(evidence_html(a["evidence"], "anti"))
                if a.get("passages"):
                    with st.expander(t("why_avoid", lang)):
                        for c in a["passages"]:
                            render_citation(st, c, lang, articles)

    if report.get("conflicts"):
        st.markdown(f"#### {t('conflicts', lang)}")
        st.caption(t("conflicts_intro", lang))
        for note in report["conflicts"]:
            render_conflict(st, note, lang, articles)

    if report.get("tips"):
        st.markdown(f"#### {t('tips', lang)}")
        st.markdown("\n".join(f"- {md_escape(tip)}" for tip in report["tips"]))

    marks = []
    for v in steps:
        if v.get("evidence") and v["status"] != "missing":
            marks.append((v["evidence"], v["status"], v["title"]))
    for a in report.get("anti_patterns", []):
        marks.append((a["evidence"], "anti", a["title"]))
    with st.expander(t("your_answer_marked", lang)):
        st.html(highlighted_answer_html(fb.get("graded_text") or fb.get("answer", ""), marks))

    with st.expander(t("model_answer", lang)):
        st.markdown(md_escape(report.get("model_answer", "")))


def _render_missing_bonus(st, items: list[dict], lang: str, articles: dict | None) -> None:
    """Optional steps the answer did not use: one compact box, the sources folded away."""
    if not items:
        return
    with st.container(border=True):
        st.markdown("  \n".join(
            f"{BONUS_MISSING_ICON} {md_escape(v['title'])} · *{t('status_missing', lang)}*" for v in items
        ))
        with st.expander(t("articles_say", lang).rstrip(":")):
            for v in items:
                if v.get("passages"):
                    st.markdown(f"**{md_escape(v['title'])}**")
                    render_citation(st, v["passages"][0], lang, articles)


def _render_step(st, v: dict, lang: str, articles: dict | None) -> None:
    icon = STATUS_ICONS.get(v["status"], STATUS_ICONS["missing"])
    label = t(f"status_{v['status']}", lang)
    with st.container(border=True):
        st.markdown(f"{icon} **{md_escape(v['title'])}** · *{label}*")
        if v.get("evidence") and v["status"] != "missing":
            st.html(evidence_html(v["evidence"], v["status"]))
        passages = v.get("passages") or []
        if v["status"] == "covered" or not passages:
            return
        if v["required"]:  # a required step that is missing or thin: show the source inline
            st.caption(t("articles_say", lang))
            render_citation(st, passages[0], lang, articles)
            rest = passages[1:]
            if rest:
                with st.expander(t("more_sources", lang, n=len(rest))):
                    for other in rest:
                        render_citation(st, other, lang, articles)
        else:
            with st.expander(t("articles_say", lang).rstrip(":")):
                for c in passages:
                    render_citation(st, c, lang, articles)


def render_ask_result(st, result: dict, lang: str, articles: dict | None = None) -> None:
    """An answer from ``coach.ask``: the text, conflicts highlighted, citations to open."""
    if not result.get("in_scope", True):
        st.info(md_escape(result["answer"]), icon=":material/explore_off:")
        return
    body = [ln for ln in result["answer"].splitlines() if ln.strip()]
    if result.get("conflicts"):
        # The conflicts are shown in their own highlighted boxes below the advice.
        cut = next((i for i, ln in enumerate(body) if i > 0 and _is_conflict_line(ln)), None)
        if cut is not None:
            body = body[:cut]
    st.markdown("\n\n".join(_md_line(ln) for ln in body))
    for note in result.get("conflicts", []):
        render_conflict(st, note, lang, articles)
    cites = result.get("citations", [])
    if cites:
        st.caption(t("sources", lang, n=len(cites)))
        for c in cites:
            title = c["passage"]
            if articles and c["article"] in articles:
                title += f" · {articles[c['article']].title}"
            with st.expander(title, icon=":material/format_quote:"):
                render_citation(st, c, lang, articles)
    for note in result.get("notes", []):
        st.caption(md_escape(note))


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
