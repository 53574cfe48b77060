"""Typed records that cross a boundary (CLI JSON, API, UI). Field names are contracts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .language import CORE as LANGS  # noqa: E402,F401 - one languages module


class Article(BaseModel):
    id: str
    file: str
    language: str
    title: str
    title_en: str
    topic: str
    author: str = ""
    meta: list[str] = Field(default_factory=list)
    headings: list[str] = Field(default_factory=list)
    title_line: bool = False
    overview: list[str] = Field(default_factory=list)  # passages introducing its steps


class Passage(BaseModel):
    """One paragraph or bullet of an article, with our aligned translations."""

    id: str  # "004#p7"
    article: str  # "004"
    language: str  # language of the original
    kind: str  # "paragraph" | "bullet" | "meta"
    heading: str  # original heading it sits under ("" if none)
    text: str  # original text, unchanged
    translations: dict[str, str] = Field(default_factory=dict)  # lang -> text
    heading_translations: dict[str, str] = Field(default_factory=dict)
    queries: dict[str, list[str]] = Field(default_factory=dict)  # lang -> questions it answers

    @property
    def text_en(self) -> str:
        return self.text if self.language == "en" else self.translations.get("en", "")

    def text_in(self, lang: str) -> str:
        if lang == self.language:
            return self.text
        return self.translations.get(lang) or self.text_en or self.text

    def heading_in(self, lang: str) -> str:
        if lang == self.language:
            return self.heading
        return self.heading_translations.get(lang) or self.heading


class SearchHit(BaseModel):
    id: str
    article: str
    language: str
    heading: str
    text: str
    text_en: str
    score: float


class SearchResult(BaseModel):
    question: str
    language: str
    in_scope: bool
    passages: list[SearchHit]


class Citation(BaseModel):
    """An article passage quoted as the source of a claim."""

    passage: str  # "004#p7"
    article: str
    language: str  # language of the original quote
    quote: str  # original text
    quote_en: str  # our English translation
    translation: str = ""  # in the user's language, when that is neither
    article_title: str = ""  # the article's title in the user's language (Ask fills it)


class StepVerdict(BaseModel):
    step: str
    title: str
    status: Literal["covered", "partly", "missing"]
    required: bool
    evidence: str = ""  # the learner's own sentence
    confidence: float = 0.0
    passages: list[Citation] = Field(default_factory=list)


class StepHit(BaseModel):
    step: str
    title: str = ""
    evidence: str = ""
    passages: list[Citation] = Field(default_factory=list)


class AntiPatternHit(BaseModel):
    id: str
    title: str = ""
    evidence: str
    passages: list[Citation] = Field(default_factory=list)


class HarmHit(BaseModel):
    """Conduct a coach disqualifies (threat, insult, privacy breach, …): shown, never hidden."""

    id: str
    title: str = ""
    severity: int = 3
    evidence: str
    why: str = ""


AlertKind = Literal["harm", "injection", "off_topic", "copied", "sarcasm", "keyword_list", "too_short",
                    "repetitive", "anti_pattern", "language", "truncated"]


class Alert(BaseModel):
    kind: AlertKind
    message: str


class Summary(BaseModel):
    """What a learner reads first: the score, the one fix that matters most, and warnings."""

    score: int
    headline: str
    top_fix: str = ""
    alerts: list[Alert] = Field(default_factory=list)


class ConflictNote(BaseModel):
    id: str
    topic: str
    sides: list[dict]  # [{"position", "passages": [Citation]}]


class GradeReport(BaseModel):
    question: dict  # {"id", "text"}
    language: str
    score: int
    steps: list[StepVerdict]
    covered: list[StepHit]
    partly: list[StepHit]
    missing: list[StepHit]
    extra_steps: list[StepHit] = Field(default_factory=list)
    anti_patterns: list[AntiPatternHit]
    conflicts: list[ConflictNote]
    strengths: list[str]
    tips: list[str]
    model_answer: str
    flags: dict[str, bool] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    harms: list[HarmHit] = Field(default_factory=list)
    summary: Summary | None = None


class AdviceStep(BaseModel):
    """One documented step of an Ask answer: what to do, why the articles say so, a line to
    say, and the passages it rests on (article title + quote, translated)."""

    step: str  # catalogue step id
    title: str
    stage: Literal["calm", "understand", "resolve", "limits", "after"]
    why: str  # the articles' reason, paraphrased
    line: str  # a concrete line to say
    line_to: Literal["caller", "yourself", "colleague", "interviewer"] = "caller"
    focus: bool = False  # search ranked one of its passages in the top 3: it answers what was asked
    citations: list[Citation] = Field(default_factory=list)


class AskResult(BaseModel):
    question: str
    language: str
    in_scope: bool
    answer: str
    citations: list[Citation]
    steps: list[str]
    conflicts: list[ConflictNote] = Field(default_factory=list)
    backend: str = "offline"
    notes: list[str] = Field(default_factory=list)
    # The answer as steps a trainer can copy into a session plan, in teaching order, in
    # ``language`` (empty when out of scope). ``steps`` lists the same ids in the same order.
    advice: list[AdviceStep] = Field(default_factory=list)
    situation: str = ""  # the trainer situation the question was read as (situations.yaml)
    follow_up: Literal["", "narrow", "extend"] = ""  # how a follow-up used the previous turn
