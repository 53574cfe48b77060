"""The vector index: Chroma, embedded (``PersistentClient``) by default or a Chroma server
(``HttpClient``) when ``CALMCALL_CHROMA_URL`` is set.

Each passage is stored once per language (original + each translation) under the vector id
``<passage>@<lang>``. Builds are idempotent and incremental: every vector carries a content
hash, and the collection's metadata holds a manifest naming the embedding model and the
knowledge fingerprint. A different model, a stale or a corrupt index is detected and
rebuilt with a clear message, never silently served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np

from .config import Settings
from .embeddings import Embedder
from .knowledge import Knowledge

log = logging.getLogger(__name__)

SCHEMA = 3  # 3: HNSW ef_search raised (see HNSW)
_MANIFEST_KEY = "calmcall_manifest"
_BATCH = 32
# Chroma's default ef_search (100) missed some of the true 40 nearest vectors, once even
# the nearest, for 9 of the 90 eval questions on our 480 / 1,632-vector collections, and
# which ones it missed varied between builds. 400 returned the exact top 40 for all of
# them at ~0.5 ms more per query. ef_search is fixed when a collection is created.
HNSW = {"space": "cosine", "ef_search": 400}


class IndexUnavailable(RuntimeError):
    """The vector store cannot be reached or used."""





@dataclass
class BuildReport:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rebuilt_reason: str = ""
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    # Telemetry would try the network; portals are locked down.
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _persistent_client(settings: Settings):
    import chromadb

    path = settings.resolved_chroma_path
    path.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:  # chroma raises many types for a damaged folder
        backup = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.warning(
            "Chroma index at %s could not be opened (%s); moved it to %s and rebuilding.",
            path,
            exc,
            backup,
        )
        shutil.move(str(path), str(backup))
        path.mkdir(parents=True, exist_ok=True)
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # chroma caches the failed system per path
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())


def _http_client(settings: Settings):
    import chromadb

    url = urlparse(settings.chroma_url)
    if not url.hostname:
        raise IndexUnavailable(f"CALMCALL_CHROMA_URL {settings.chroma_url!r} has no host")
    try:
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=_chroma_settings(),
        )
    except Exception as exc:
        raise IndexUnavailable(f"Chroma server at {settings.chroma_url} is not reachable: {exc}") from exc


# The store registry: how a Chroma client is made, picked by configuration.
CLIENTS: dict[str, Callable[[Settings], object]] = {
    "persistent": _persistent_client,
    "http": _http_client,
}


def client_kind(settings: Settings) -> str:
    return "http" if settings.chroma_url else "persistent"


def vector_docs(knowledge: Knowledge) -> dict[str, tuple[str, dict]]:
    """Every vector the index should hold: id -> (text to embed, metadata with hash)."""
    docs: dict[str, tuple[str, dict]] = {}
    for p in knowledge.indexable():
        langs = [p.language] + sorted(k for k in p.translations if k != p.language)
        for lang in langs:
            heading = p.heading_in(lang)
            body = p.text_in(lang)
            text = f"{heading}: {body}" if heading else body
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            docs[f"{p.id}@{lang}"] = (
                text,
                {
                    "passage": p.id,
                    "article": p.article,
                    "lang": lang,
                    "original": lang == p.language,
                    "hash": digest,
                },
            )
    return docs


def passage_of(vector_id: str) -> str:
    """The passage a vector belongs to: ids are ``<passage>@<lang>`` / ``<passage>@q:…``."""
    return vector_id.partition("@")[0]


def query_docs(knowledge: Knowledge) -> dict[str, tuple[str, dict]]:
    """The doc2query questions of every passage, embedded on the query side."""
    docs: dict[str, tuple[str, dict]] = {}
    for p in knowledge.indexable():
        for lang, questions in sorted(p.queries.items()):
            for n, q in enumerate(questions):
                digest = hashlib.sha256(q.encode()).hexdigest()[:16]
                docs[f"{p.id}@q:{lang}:{n}"] = (
                    q,
                    {"passage": p.id, "article": p.article, "lang": lang, "original": False, "hash": digest},
                )
    return docs


class VectorIndex:
    """One Chroma collection of vectors for a set of documents, with its manifest.

    ``docs`` maps vector id -> (text, metadata with a ``hash``). ``side`` says whether the
    texts are embedded as passages (article text) or as queries (catalogue phrasings,
    which are compared with what users write).
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        docs: dict[str, tuple[str, dict]],
        fingerprint: str,
        name: str | None = None,
        side: str = "passage",
        client=None,
        cache=None,
    ):
        self.settings = settings
        self.embedder = embedder
        self.docs = docs
        self.fingerprint = fingerprint
        self.name = name or settings.collection
        self.side = side
        self.cache = cache
        self.kind = client_kind(settings)
        self.client = client if client is not None else CLIENTS[self.kind](settings)
        self._collection = None
        self.manifest: dict = {}

    # -- manifest -------------------------------------------------------------
    def _wanted_manifest(self, count: int) -> dict:
        return {
            "schema": SCHEMA,
            "embedder": self.embedder.manifest_id,
            "knowledge": self.fingerprint,
            "side": self.side,
            "count": count,
        }

    def _open_collection(self, rebuild_reason: str = ""):
        name = self.name
        try:
            if rebuild_reason:
                try:
                    self.client.delete_collection(name)
                except Exception:  # absent: nothing to delete
                    pass
            collection = self.client.get_or_create_collection(
                name,
                embedding_function=self.embedder.as_chroma(),
                configuration={"hnsw": HNSW},
            )
        except IndexUnavailable:
            raise
        except Exception as exc:
            raise IndexUnavailable(f"Chroma collection {name!r} could not be opened: {exc}") from exc
        self._collection = collection
        raw = (collection.metadata or {}).get(_MANIFEST_KEY)
        try:
            self.manifest = json.loads(raw) if raw else {}
        except ValueError:
            self.manifest = {}
        return collection

    def as_langchain(self):
        """This collection as a langchain ``VectorStore``, for chains built on CalmCall's
        index. Search itself queries Chroma directly: it needs only ids and distances, and
        the wrapper's documents + metadata fetch tripled the query time (1.2 vs 3.7 ms)."""
        from langchain_chroma import Chroma

        if self._collection is None:
            self._open_collection()
        return Chroma(
            client=self.client,
            collection_name=self.name,
            embedding_function=self.embedder.as_langchain(),
        )

    def staleness(self) -> str:
        """Why the stored index cannot be served as is ('' when it is current)."""
        if self._collection is None:
            self._open_collection()
        m = self.manifest
        if not m:
            return "no index yet" if self._collection.count() == 0 else "index has no manifest"
        if m.get("schema") != SCHEMA:
            return f"index schema {m.get('schema')} != {SCHEMA}"
        if m.get("embedder") != self.embedder.manifest_id:
            return f"embedding model changed ({m.get('embedder')} -> {self.embedder.manifest_id})"
        if m.get("knowledge") != self.fingerprint:
            return "knowledge files changed since the index was built"
        if m.get("count") != self._collection.count():
            return f"index holds {self._collection.count()} vectors, manifest says {m.get('count')}"
        return ""

    # -- build ----------------------------------------------------------------
    def build(self, progress: bool = False, force: bool = False) -> BuildReport:
        """Bring the index in line with the knowledge base, embedding only what changed."""
        start = time.perf_counter()
        report = BuildReport()
        if self._collection is None:
            self._open_collection()
        reason = "forced rebuild" if force else ""
        m = self.manifest
        if m and m.get("embedder") != self.embedder.manifest_id:
            reason = f"embedding model changed ({m.get('embedder')} -> {self.embedder.manifest_id})"
        elif m and m.get("schema") != SCHEMA:
            reason = f"index schema {m.get('schema')} -> {SCHEMA}"
        if reason:
            log.warning("Rebuilding the index from scratch: %s.", reason)
            report.rebuilt_reason = reason
            self._open_collection(rebuild_reason=reason)

        wanted = self.docs
        existing = self._collection.get(include=["metadatas"])
        have = {i: (md or {}).get("hash") for i, md in zip(existing["ids"], existing["metadatas"])}
        stale_ids = [i for i in have if i not in wanted]
        todo = [i for i, (_, md) in wanted.items() if have.get(i) != md["hash"]]
        report.unchanged = len(wanted) - len(todo)
        report.updated = sum(1 for i in todo if i in have)
        report.added = len(todo) - report.updated
        report.deleted = len(stale_ids)
        if stale_ids:
            self._collection.delete(ids=stale_ids)
        if todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="Embedding passages", unit="vec", disable=not progress)
            for i in range(0, len(todo), _BATCH):
                chunk = todo[i : i + _BATCH]
                texts = [wanted[c][0] for c in chunk]
                vectors = self.embedder.embed_cached(texts, self.side == "query", self.cache)
                self._collection.upsert(
                    ids=chunk,
                    embeddings=vectors.tolist(),
                    metadatas=[wanted[c][1] for c in chunk],
                    documents=texts,
                )
                bar.update(len(chunk))
            bar.close()
            if self.cache is not None:
                self.cache.save()
        manifest = self._wanted_manifest(len(wanted))
        old_core = {k: v for k, v in self.manifest.items() if k != "extra"}
        if old_core == manifest and "extra" in self.manifest:
            manifest["extra"] = self.manifest["extra"]  # derived data is still valid
        if manifest != self.manifest:
            self._collection.modify(metadata={_MANIFEST_KEY: json.dumps(manifest)})
            self.manifest = manifest
        report.seconds = time.perf_counter() - start
        return report

    def ensure_current(self, progress: bool = False) -> BuildReport | None:
        """Serve only a current index: rebuild (with a message) when it is stale."""
        reason = self.staleness()
        if not reason:
            return None
        if reason == "no index yet":
            log.warning("Building the %s index for the first time (this happens once).", self.name)
        else:
            log.warning("Index %s is not current (%s); updating it now.", self.name, reason)
        return self.build(progress=progress)

    # -- query ----------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int = 60) -> list[tuple[str, float]]:
        """Nearest vectors as (vector id, cosine similarity)."""
        if self._collection is None:
            self._open_collection()
        try:
            res = self._collection.query(
                query_embeddings=vector[None, :], n_results=k, include=["distances"]
            )
        except Exception as exc:
            raise IndexUnavailable(f"vector search failed: {exc}") from exc
        return [(vid, 1.0 - float(dist)) for vid, dist in zip(res["ids"][0], res["distances"][0])]

    def set_extra(self, extra: dict) -> None:
        """Store data derived from this index (e.g. score calibration) in its manifest."""
        self.manifest = {**self.manifest, "extra": extra}
        self._collection.modify(metadata={_MANIFEST_KEY: json.dumps(self.manifest)})

    def all_vectors(self) -> tuple[list[str], list[dict], np.ndarray]:
        data = self._collection.get(include=["metadatas", "embeddings"])
        return data["ids"], data["metadatas"], np.asarray(data["embeddings"], dtype=np.float32)

