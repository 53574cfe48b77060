"""The feedback composer: the policy's decisions in, a ``GradeReport`` out, written in the
answer's language — summary first (score, the one fix that matters most, any warning),
then the checklist with the learner's sentences and the passages that teach what is missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalogue import Catalogue, Question, conflict_note
from .language import SUPPORTED
from .models import Alert, AntiPatternHit, Citation, GradeReport, HarmHit, StepHit, StepVerdict, Summary
from .prompts import load_prompt, localized
from .text import mentions

if TYPE_CHECKING:
    from .grading import Scored


@dataclass
class Verdicts:
    covered: list[StepHit]
    partly: list[StepHit]
    missing: list[StepHit]


# the order a learner should read warnings in: what disqualifies first
_ALERT_ORDER = ("harm", "injection", "off_topic", "copied", "sarcasm", "keyword_list", "repetitive", "too_short")


class FeedbackComposer:
    def __init__(self, settings, catalogue: Catalogue, knowledge):
        self.catalogue = catalogue
        self.knowledge = knowledge
        self.fb = load_prompt("feedback", settings.prompts_dir)

    def _t(self, key: str, lang: str, **fmt) -> str:
        text = localized(self.fb, key, lang)
        return text.format(**fmt) if fmt else text

    def _citations(self, pids: list[str], lang: str, limit: int = 3) -> list[Citation]:
        return [self.knowledge.cite(pid, lang) for pid in pids[:limit]]

    def model_answer(self, q: Question, lang: str) -> str:
        lang = lang if lang in SUPPORTED else "en"
        order = list(self.catalogue.steps)
        chosen = sorted(q.required + q.bonus[:2], key=order.index)
        sentences = [self._t("model_intro", lang)]
        sentences += [self.catalogue.steps[sid].t("model_sentence", lang) for sid in chosen]
        return " ".join(x for x in sentences if x)

    def compose(self, s: Scored, q_text: str, q_warnings: list[str], feedback_lang: str | None = None) -> GradeReport:
        """``feedback_lang``: write the feedback in this language instead of the answer's
        (the app's UI language: an English answer in the Swedish UI reads Swedish feedback)."""
        parsed, q, flags, statuses = s.match.parsed, s.question, s.flags, s.statuses
        lang = parsed.language
        # feedback is written in all eight
        flang = feedback_lang if feedback_lang in SUPPORTED else lang if lang in SUPPORTED else "en"
        warnings = list(parsed.warnings) + list(q_warnings)
        if lang not in SUPPORTED:
            warnings.append(self._t("language_fallback", "en"))
        best = s.match.best("step")

        verdicts: list[StepVerdict] = []
        groups = Verdicts([], [], [])
        for sid in q.expected:
            step = self.catalogue.steps[sid]
            status = statuses[sid]
            e = best.get(sid)
            evidence = e.span if e and status != "missing" else ""
            cites = self._citations(step.passages, flang)
            verdicts.append(StepVerdict(step=sid, title=step.t("title", flang), status=status,
                                        required=sid in q.required, evidence=evidence,
                                        confidence=round(float(e.confidence), 4) if e else 0.0, passages=cites))
            hit = StepHit(step=sid, title=step.t("title", flang), evidence=evidence, passages=cites)
            getattr(groups, status).append(hit)
        extra = [
            StepHit(step=sid, title=self.catalogue.steps[sid].t("title", flang), evidence=best[sid].span,
                    passages=self._citations(self.catalogue.steps[sid].passages, flang, 1))
            for sid, st in statuses.items() if sid not in q.expected and st == "covered"
        ]
        antis = []
        for aid, e in sorted(s.match.best("anti").items(), key=lambda kv: -kv[1].confidence):
            a = self.catalogue.anti_patterns[aid]
            antis.append(AntiPatternHit(id=aid, title=a.t("title", flang), evidence=e.span,
                                        passages=self._citations(a.passages, flang, 2)))
        harms = []
        for hid, e in sorted(s.match.best("harm").items(), key=lambda kv: (-self.catalogue.harms[kv[0]].severity, kv[0])):
            h = self.catalogue.harms[hid]
            harms.append(HarmHit(id=hid, title=h.t("title", flang), severity=h.severity, evidence=e.span,
                                 why=h.t("description", flang)))
        conflicts = self._conflicts(q, statuses, set(s.match.best("anti")), parsed.graded_text, flang)
        tips = self._tips(q, statuses, s.denied, antis, flags, flang)
        report = GradeReport(
            question={"id": q.id, "text": q.text.get(flang) or q_text},
            language=lang,
            score=s.score,
            steps=verdicts,
            covered=groups.covered,
            partly=groups.partly,
            missing=groups.missing,
            extra_steps=extra,
            anti_patterns=antis,
            conflicts=conflicts,
            strengths=[self._t("strength", flang, title=h.title) for h in groups.covered],
            tips=tips,
            model_answer=self.model_answer(q, flang),
            flags=flags,
            warnings=warnings,
            harms=harms,
        )
        report.summary = self._summary(report, flang, parsed, s.terse)
        return report

    def _summary(self, r: GradeReport, lang: str, parsed, terse: bool = False) -> Summary:
        alerts: list[Alert] = []
        for h in r.harms:
            evidence = h.evidence.rstrip(" .!?;,")  # the template closes the quote
            alerts.append(Alert(kind="harm", message=self._t("harm", lang, title=h.title, evidence=evidence, why=h.why)))
        for kind in _ALERT_ORDER[1:]:
            if r.flags.get(kind) and not (kind == "too_short" and r.flags.get("off_topic")):
                alerts.append(Alert(kind=kind, message=self._t(kind, lang)))
        if r.flags.get("sarcasm") is False and parsed.sarcastic and not r.harms:
            marker = next(iter(parsed.sarcastic.values()))
            alerts.append(Alert(kind="sarcasm", message=self._t("sarcasm_sentence", lang, marker=marker)))
        top_fix = ""
        if alerts:
            top_fix = alerts[0].message
        elif r.anti_patterns:
            a = self.catalogue.anti_patterns[r.anti_patterns[0].id]
            top_fix = self._t("avoid", lang, title=a.t("title", lang), description=a.t("description", lang))
        elif terse:  # the steps are named, not told: that costs more than one missing step
            top_fix = self._t("say_more", lang)
        else:
            missing = [v for v in r.steps if v.required and v.status == "missing"] or \
                      [v for v in r.steps if v.required and v.status == "partly"]
            if missing:
                step = self.catalogue.steps[missing[0].step]
                key = "add_step" if missing[0].status == "missing" else "deepen_step"
                top_fix = self._t(key, lang, title=step.t("title", lang), description=step.t("description", lang))
        band = "excellent" if r.score >= 85 else "good" if r.score >= 65 else "fair" if r.score >= 40 else "weak"
        return Summary(score=r.score, headline=self._t(f"headline_{band}", lang), top_fix=top_fix, alerts=alerts)

    def _conflicts(self, q, statuses, antis, text, lang):
        notes = []
        for c in self.catalogue.conflicts.values():
            touched = c.id in q.conflicts
            touched |= any(statuses.get(s) in ("covered", "partly") for s in c.steps)
            touched |= any(a in antis for a in c.anti_patterns)
            touched |= mentions(text, c.all_cues)
            if touched:
                notes.append(conflict_note(c, self.knowledge, lang))
        return notes

    def _tips(self, q, statuses, denied, antis, flags, lang) -> list[str]:
        tips: list[str] = []
        for kind in ("harm", "injection", "off_topic", "copied", "sarcasm", "keyword_list", "repetitive"):
            if flags.get(kind) and kind != "harm":
                tips.append(self._t(kind, lang))
        if flags["too_short"] and not flags["off_topic"]:
            tips.append(self._t("too_short", lang))
        for a in antis:
            ap = self.catalogue.anti_patterns[a.id]
            tips.append(self._t("avoid", lang, title=ap.t("title", lang), description=ap.t("description", lang)))
        for sid in q.required + q.bonus:
            step = self.catalogue.steps[sid]
            fmt = dict(title=step.t("title", lang), description=step.t("description", lang))
            if sid in denied and statuses[sid] == "missing":
                tips.append(self._t("negated_step", lang, **fmt))
            elif statuses[sid] == "missing" and sid in q.required:
                tips.append(self._t("add_step", lang, **fmt))
            elif statuses[sid] == "partly" and sid in q.required:
                tips.append(self._t("deepen_step", lang, **fmt))
        if "personal_example" in self.catalogue.steps and statuses.get("personal_example") == "missing":
            tips.append(self._t("example", lang))
        return tips


def print_report(report: GradeReport) -> None:
    """Human-readable report for the terminal: the summary first."""
    print(f"Question: {report.question['text']}  [{report.question['id']}]")
    print(f"Language: {report.language}   Score: {report.score}/100")
    if report.summary:
        print(report.summary.headline)
        for a in report.summary.alerts:
            print(f"  (!) {a.message}")
        if report.summary.top_fix and not report.summary.alerts:
            print(f"  Next: {report.summary.top_fix}")
    flags = [k for k, v in report.flags.items() if v]
    if flags:
        print("Flags: " + ", ".join(flags))
    for v in report.steps:
        mark = {"covered": "[x]", "partly": "[~]", "missing": "[ ]"}[v.status]
        req = "" if v.required else " (bonus)"
        print(f"  {mark} {v.title}{req}")
        if v.evidence:
            print(f"        you: \"{v.evidence}\"")
        elif v.passages:
            c = v.passages[0]  # in the report's language where we have it, else our English
            text = c.quote if c.language == report.language else (c.translation or c.quote_en)
            print(f"        [{c.passage}] {text}")
    for h in report.harms:
        print(f"  (!!) {h.title}: \"{h.evidence}\"")
    for a in report.anti_patterns:
        print(f"  (!) {a.title}: \"{a.evidence}\"")
    for c in report.conflicts:
        print(f"  Conflict: {c.topic}")
        for side in c.sides:
            ids = ", ".join(p["passage"] for p in side["passages"])
            print(f"     - {side['position']} [{ids}]")
    if report.tips:
        print("Tips:")
        for t in report.tips:
            print(f"  - {t}")
    print("Model answer:\n  " + report.model_answer)
    for w in report.warnings:
        print(f"note: {w}")
