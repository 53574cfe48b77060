"""A one-page handout of an Ask answer, in Markdown: what a trainer prints or pastes into a
session plan. Built from the answer's structured advice only (no model, no network), so it
says exactly what the app showed: the steps by stage, each with why, the line to say and its
sources (the best one quoted, shortened), then the conflicts."""

from __future__ import annotations

from .models import AskResult, Citation
from .prompts import load_prompt, localized


def _quote(c: Citation, lang: str) -> str:
    """The passage in ``lang``: the original, our English, or our translation."""
    if lang == c.language:
        return c.quote
    if c.translation:
        return c.translation
    return c.quote_en or c.quote


def _short(text: str, limit: int = 240) -> str:
    """The opening of a quote, cut at a sentence end when one is near: a handout is a page."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def _md(text: str) -> str:
    """Plain text made safe for one Markdown line (no headings, lists or HTML from data)."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")


def handout(result: AskResult, lang: str | None = None, prompts_dir=None) -> str:
    """The answer as a one-page Markdown handout. ``lang`` picks the labels (default: the
    answer's language); the advice itself is in the language the answer was written in."""
    lang = lang or result.language
    p = load_prompt("answer", prompts_dir)
    out = [f"# {localized(p, 'handout_title', lang)}", "", f"**{localized(p, 'handout_question', lang)}:** {_md(result.question)}", ""]
    if not result.in_scope:
        out += [_md(result.answer), ""]
        return "\n".join(out)
    stage = None
    for n, a in enumerate(result.advice, start=1):
        if a.stage != stage:
            stage = a.stage
            out += [f"## {localized(p, f'stage_{stage}', lang)}", ""]
        out += [f"### {n}. {_md(a.title)}", "", f"*{localized(p, 'handout_why', lang)}:* {_md(a.why)}", "",
                f"> **{localized(p, f'line_{a.line_to}', lang)}:** “{_md(a.line)}”", ""]
        if a.citations:  # the best source quoted, the others named
            out.append(f"*{localized(p, 'handout_sources', lang)}:*")
            for i, c in enumerate(a.citations):
                quote = f": “{_md(_short(_quote(c, lang)))}”" if i == 0 else ""
                out.append(f"- *{_md(c.article_title or c.article)}* ({c.passage}){quote}")
            out.append("")
    if result.conflicts:
        out += [f"## {localized(p, 'handout_conflicts', lang)}", ""]
        for c in result.conflicts:
            out += [f"**{_md(c.topic)}**", ""]
            for side in c.sides:
                refs = ", ".join(
                    f"*{_md(x.get('article_title') or x.get('article', ''))}* ({x['passage']})" for x in side["passages"])
                out.append(f"- {_md(side['position'])} — {refs}")
            out.append("")
    out += ["---", f"*{localized(p, 'handout_footer', lang)}*", ""]
    return "\n".join(out)
