"""The knowledge base: the five articles, cut into passages, with our aligned translations.

Passages follow the articles' own structure: each paragraph or bullet item is one passage
carrying the heading it sits under; short lines are headings; a paragraph too long for the
embedder (~200 tokens) is split at sentence boundaries. Ids are ``<article>#p<n>`` in reading
order, so they are stable as long as the (unchanged) originals are.

Translations live in ``knowledge/translations/<lang>/<article>.yaml`` keyed by passage id.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .models import LANGS, Article, Citation, Passage

MAX_WORDS = 110  # ~200 e5 tokens for these languages (measured: ~1.6 tokens per word)
_BULLET = re.compile(r"^\s*[-*•]\s+")
_NUMBERED = re.compile(r"^\s*\d+\.\s")
_SENT_SPLIT = re.compile(r"(?<=[.!?…])\s+(?=[\"“”'‘A-ZÁÉÍÓÖŐÚÜŰÅÄÖa-zåäöáéíóöőúüű])")


class KnowledgeError(RuntimeError):
    """The knowledge folder is missing, malformed or out of alignment."""


@dataclass(frozen=True)
class RawPassage:
    kind: str
    heading: str
    text: str


def _is_heading(line: str) -> bool:
    words = line.split()
    if _BULLET.match(line):
        return len(words) <= 9 and not line.rstrip().endswith((".", "!"))
    if _NUMBERED.match(line):
        return len(words) <= 14
    if line.rstrip().endswith(":"):
        return len(words) <= 5
    if len(words) <= 5:
        return True
    return len(words) <= 9 and not line.rstrip().endswith((".", "!", "…", "”", '"'))


def _split_long(text: str) -> list[str]:
    if len(text.split()) <= MAX_WORDS:
        return [text]
    sentences = _SENT_SPLIT.split(text)
    chunks: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        if current and len(" ".join(current + [sentence]).split()) > MAX_WORDS:
            chunks.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        chunks.append(" ".join(current))
    return chunks


def segment(
    text: str,
    meta_prefixes: list[str] | tuple[str, ...] = (),
    heading_prefixes: list[str] | tuple[str, ...] = (),
    title_line: bool = False,
) -> list[RawPassage]:
    """Cut one article into passages (headings become the ``heading`` of what follows).

    ``title_line``: the first line is the article's title, used as the opening heading.
    ``heading_prefixes``: lines the length rule misses but the article uses as headings.
    """
    heading = ""
    sub = ""
    out: list[RawPassage] = []
    first = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if first and title_line:
            heading, first = line, False
            continue
        first = False
        if any(line.startswith(p) for p in meta_prefixes):
            out.append(RawPassage("meta", "", line))
            continue
        if _is_heading(line) or any(line.startswith(p) for p in heading_prefixes):
            clean = _BULLET.sub("", line).strip()
            if clean.endswith(":"):  # "how to do it:" is a sub-heading of the current one
                sub = clean
            else:
                heading, sub = clean, ""
            continue
        kind = "bullet" if _BULLET.match(line) else "paragraph"
        body = _BULLET.sub("", line).strip()
        full_heading = f"{heading} — {sub}" if sub and heading else (sub or heading)
        for chunk in _split_long(body):
            out.append(RawPassage(kind, full_heading, chunk))
    return out


@dataclass
class Knowledge:
    root: Path
    articles: dict[str, Article]
    passages: dict[str, Passage]
    fingerprint: str = ""
    by_article: dict[str, list[Passage]] = field(default_factory=dict)

    def indexable(self) -> list[Passage]:
        return [p for p in self.passages.values() if p.kind != "meta"]

    def cite(self, pid: str, lang: str) -> Citation:
        """A passage as a citation: original quote, English, and the user's language."""
        p = self.get(pid)
        return Citation(
            passage=p.id,
            article=p.article,
            language=p.language,
            quote=p.text,
            quote_en=p.text_en,
            # our translations cover the five knowledge languages; elsewhere the English is it
            translation=p.translations.get(lang, "") if lang not in (p.language, "en") else "",
        )

    def is_overview(self, pid: str) -> bool:
        """An introduction to the article's own steps ("Here are some tips…"): no advice
        of its own, so answers present the steps the article teaches instead of quoting it."""
        article = self.articles.get(pid.split("#")[0])
        return article is not None and pid in article.overview

    def get(self, pid: str) -> Passage:
        try:
            return self.passages[pid]
        except KeyError:
            raise KnowledgeError(f"unknown passage id {pid!r}") from None


# libyaml's safe loader parses the knowledge files ~12x faster than the pure-Python one
# (0.09 vs 1.1 s for all of them; same data); the pure-Python one where libyaml is absent.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParsedYamlCache:
    """Parsed knowledge YAML kept in the data dir, keyed by a hash of the file's text, so a
    new process reads data it has parsed before in milliseconds (libyaml still takes ~0.2 s
    for the catalogue, phrasings and translations). Stored with ``marshal`` (plain data
    only, cannot run code); a text that changed simply misses. Off until ``configure``."""

    MAX_ENTRIES = 256

    def __init__(self) -> None:
        self.path: Path | None = None
        self._entries: dict[str, bytes] | None = None
        self._used: set[str] = set()
        self._dirty = False
        self._lock = threading.Lock()

    def configure(self, directory: Path | None) -> None:
        import sys

        path = None if directory is None else Path(directory) / f"yaml-{sys.version_info[0]}{sys.version_info[1]}.marshal"
        with self._lock:
            if path != self.path:
                self.path, self._entries, self._used, self._dirty = path, None, set(), False

    def _load(self) -> dict[str, bytes]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None and self.path.exists():
                try:
                    data = marshal.loads(self.path.read_bytes())
                    if isinstance(data, dict):
                        self._entries = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, bytes)}
                except (OSError, EOFError, ValueError, TypeError):
                    self._entries = {}
        return self._entries

    def parse(self, text: str | bytes):
        if self.path is None:
            return yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
        raw = text.encode("utf-8") if isinstance(text, str) else text
        key = hashlib.sha256(YAML_LOADER.__name__.encode() + b"|" + raw).hexdigest()[:32]
        with self._lock:
            blob = self._load().get(key)
            self._used.add(key)
        if blob is not None:
            try:
                return marshal.loads(blob)  # a fresh object each time: callers may change it
            except (EOFError, ValueError, TypeError):
                pass
        data = yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
        try:
            blob = marshal.dumps(data)
        except ValueError:  # dates and other non-plain values: not cached
            return data
        with self._lock:
            self._load()[key] = blob
            self._dirty = True
        return data

    def flush(self) -> None:
        """Write newly parsed entries (atomically; a read-only data dir just stays uncached)."""
        with self._lock:
            if self.path is None or not self._dirty:
                return
            entries = self._load()
            if len(entries) > self.MAX_ENTRIES:
                entries = {k: v for k, v in entries.items() if k in self._used}
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(marshal.dumps(entries))
                tmp.replace(self.path)
                self._dirty = False
            except OSError:
                pass
            finally:
                tmp.unlink(missing_ok=True)


YAML_CACHE = ParsedYamlCache()


def load_yaml(text: str | bytes):
    """Parse YAML data (a safe loader: plain data only), through the parsed cache when one
    is configured (``YAML_CACHE.configure(data_dir / "cache")``; the Coach does)."""
    return YAML_CACHE.parse(text)


def _read_yaml(path: Path):
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KnowledgeError(f"missing knowledge file: {path}") from None
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"malformed YAML in {path}: {exc}") from None


def load_articles(root: Path) -> dict[str, Article]:
    entries = _read_yaml(root / "articles.yaml") or []
    return {e["id"]: Article(**e) for e in entries}


def segment_article(root: Path, article: Article) -> list[Passage]:
    path = root / "articles" / article.file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KnowledgeError(f"missing article file: {path}") from None
    passages = []
    raws = segment(text, article.meta, article.headings, article.title_line)
    for n, raw in enumerate(raws, start=1):
        passages.append(
            Passage(
                id=f"{article.id}#p{n}",
                article=article.id,
                language=article.language,
                kind=raw.kind,
                heading=raw.heading,
                text=raw.text,
            )
        )
    return passages


def _attach_translations(root: Path, passages: dict[str, Passage]) -> None:
    tdir = root / "translations"
    if not tdir.exists():
        return
    for lang_dir in sorted(p for p in tdir.iterdir() if p.is_dir()):
        lang = lang_dir.name
        for f in sorted(lang_dir.glob("*.yaml")):
            data = _read_yaml(f) or {}
            for pid, entry in (data.get("passages") or {}).items():
                if pid not in passages:
                    raise KnowledgeError(f"{f}: translation for unknown passage {pid!r}")
                if isinstance(entry, str):
                    entry = {"text": entry}
                passage = passages[pid]
                if lang == passage.language:
                    continue
                if entry.get("text"):
                    passage.translations[lang] = str(entry["text"]).strip()
                if entry.get("heading"):
                    passage.heading_translations[lang] = str(entry["heading"]).strip()


def _attach_queries(root: Path, passages: dict[str, Passage]) -> None:
    """``knowledge/queries/<article>.yaml``: questions each passage answers, per language
    (doc2query). A small embedder matches questions to questions far better than to
    passages, so these are indexed as extra vectors of their passage."""
    qdir = root / "queries"
    if not qdir.exists():
        return
    for f in sorted(qdir.glob("*.yaml")):
        data = _read_yaml(f) or {}
        for pid, per_lang in (data.get("passages") or {}).items():
            if pid not in passages:
                raise KnowledgeError(f"{f}: queries for unknown passage {pid!r}")
            passages[pid].queries = {
                lang: [str(q).strip() for q in qs if str(q).strip()] for lang, qs in (per_lang or {}).items()
            }


# what the passage and question indexes are built from; the catalogue, harms, phrasings,
# scenarios and the grading policy have fingerprints of their own (a policy change must not
# rebuild the passage index)
_INDEXED = ("articles", "articles.yaml", "translations", "queries", "scope_anchors.yaml", "calibration.yaml")


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256()
    files = [f for name in _INDEXED for f in ([root / name] if (root / name).is_file() else (root / name).rglob("*"))]
    for f in sorted(files):
        if f.is_file() and f.suffix in {".txt", ".yaml"}:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=4)
def load_knowledge(root: Path) -> Knowledge:
    """Load articles, passages and translations once per knowledge folder."""
    root = Path(root)
    articles = load_articles(root)
    passages: dict[str, Passage] = {}
    by_article: dict[str, list[Passage]] = {}
    for article in articles.values():
        segs = segment_article(root, article)
        by_article[article.id] = segs
        passages.update((p.id, p) for p in segs)
    _attach_translations(root, passages)
    _attach_queries(root, passages)
    return Knowledge(root, articles, passages, _fingerprint(root), by_article)


__all__ = ["Knowledge", "KnowledgeError", "LANGS", "load_knowledge", "segment"]
