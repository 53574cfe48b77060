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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import thirdparty
from .config import Settings
from .embeddings import Embedder, save_npz
from .knowledge import Knowledge

log = logging.getLogger(__name__)

SCHEMA = 3  # 3: HNSW ef_search raised (see HNSW)
_MANIFEST_KEY = "calmcall_manifest"
_BATCH = 32  # texts embedded per step (progress bar, vector cache)
# Vectors written to Chroma per upsert: one call per few thousand instead of one per 32
# (fewer round trips, commits and index updates; Chroma's own limit still applies).
_UPSERT_BATCH = 4096
# Local snapshots of the embedded store's collections (manifest, ids, hashes, metadata,
# vectors), kept inside the store's own folder so they go wherever it goes (deleted with
# it, moved aside with it when it is corrupt). A process that only needs to know the
# index is current, or needs a collection's vectors as a matrix (the catalogue bridge, the
# scope check), reads them from here and never imports or opens Chroma (~1 s per start).
# Every write through VectorIndex removes the snapshot first and writes a new one after;
# a query opens Chroma and checks it still matches the snapshot it was served from.
SNAPSHOT_DIR = "calmcall-snapshots"
SNAPSHOT_FORMAT = 1
# Chroma's default ef_search (100) missed some of the true 40 nearest vectors, once even
# the nearest, for 9 of the 90 eval questions on our 480 / 1,632-vector collections, and
# which ones it missed varied between builds. 400 returned the exact top 40 for all of
# them at ~0.5 ms more per query. ef_search is fixed when a collection is created.
HNSW = {"space": "cosine", "ef_search": 400}
# Vector sets that are only ever read back whole, as a matrix, and never searched: the
# catalogue phrasings (StepBridge holds them as one matrix and compares every answer
# sentence with all of them). A vector database is for search, so they are not a Chroma
# collection: the index keeps them only in its local file (the same format as a
# snapshot) under data_dir/MATRIX_DIR, for the embedded store and a Chroma server alike.
# Writing their 6,626 vectors into Chroma was ~3 s of a fresh build's ~8 s. Chosen by
# name unless a VectorIndex says otherwise.
MATRIX_ONLY_SUFFIXES = ("_catalogue",)
MATRIX_DIR = "matrices"


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
    thirdparty.chromadb()
    from chromadb.config import Settings as ChromaSettings

    # Telemetry would try the network; portals are locked down.
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _persistent_client(settings: Settings):
    chromadb = thirdparty.chromadb()

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
    chromadb = thirdparty.chromadb()

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


def memoized_docs(owner, kind: str, build: Callable[[], dict]) -> dict:
    """``build()`` once per (loaded, never changed) knowledge or catalogue object: the
    document sets are asked for by the index build, the staleness check and the indexes
    themselves, and hashing every text again costs ~0.1 s each time (the catalogue's 6,626
    phrasings). Callers treat the result as read-only."""
    memo = owner.__dict__.setdefault("_calmcall_docs", {})
    docs = memo.get(kind)
    if docs is None:
        docs = memo[kind] = build()
    return docs


def vector_docs(knowledge: Knowledge) -> dict[str, tuple[str, dict]]:
    """Every vector the index should hold: id -> (text to embed, metadata with hash)."""
    return memoized_docs(knowledge, "passages", lambda: _vector_docs(knowledge))


def _vector_docs(knowledge: Knowledge) -> dict[str, tuple[str, dict]]:
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
    return memoized_docs(knowledge, "queries", lambda: _query_docs(knowledge))


def _query_docs(knowledge: Knowledge) -> dict[str, tuple[str, dict]]:
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


class ChromaStore:
    """The Chroma client of one configuration, created on first use and shared by the
    indexes that use it (importing chromadb and opening a store cost ~1 s)."""

    def __init__(self, settings: Settings, client=None):
        self.settings = settings
        self.kind = client_kind(settings)
        self._client = client
        self._external = client is not None  # a client handed in: we do not know its folder
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = CLIENTS[self.kind](self.settings)
        return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def snapshot_dir(self) -> Path | None:
        """Where collection snapshots live: embedded stores only (a server is shared by
        workers that may rebuild it, so it is always asked)."""
        if self.kind != "persistent" or self._external:
            return None
        return self.settings.resolved_chroma_path / SNAPSHOT_DIR


class VectorIndex:
    """One Chroma collection of vectors for a set of documents, with its manifest.

    ``docs`` maps vector id -> (text, metadata with a ``hash``), or is a zero-argument
    callable that returns that mapping when it is first needed. ``side`` says whether the
    texts are embedded as passages (article text) or as queries (catalogue phrasings,
    which are compared with what users write). ``client`` may be a Chroma client or the
    ``store`` of another index (to share one lazily created client).

    Chroma is opened only when it is needed: to query, to write, or when there is no
    current snapshot of the collection (see ``SNAPSHOT_DIR``).
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        docs: dict[str, tuple[str, dict]] | Callable[[], dict[str, tuple[str, dict]]],
        fingerprint: str,
        name: str | None = None,
        side: str = "passage",
        client=None,
        cache=None,
        matrix_only: bool | None = None,
    ):
        self.settings = settings
        self.embedder = embedder
        self._docs = docs
        self.fingerprint = fingerprint
        self.name = name or settings.collection
        self.side = side
        self.cache = cache
        self.matrix_only = self.name.endswith(MATRIX_ONLY_SUFFIXES) if matrix_only is None else matrix_only
        self.store = client if isinstance(client, ChromaStore) else ChromaStore(settings, client)
        self.kind = self.store.kind
        self._coll = None
        self._lock = threading.RLock()
        self.manifest: dict = {}
        self._snap: dict | None = None  # the snapshot this index is served from, if any
        self._snap_read = False

    @property
    def docs(self) -> dict[str, tuple[str, dict]]:
        """The documents; given as a zero-argument callable they are built on first use
        (checking or serving a current index from its snapshot never needs them)."""
        if callable(self._docs):
            self._docs = self._docs()
        return self._docs

    @property
    def client(self):
        return self.store.client

    @property
    def _collection(self):
        """The Chroma collection, opened on first use. An index served from its snapshot
        checks, when it opens Chroma, that the store still holds what the snapshot says; if
        something else changed it, Chroma is trusted instead and the index brought up to
        date (or, when it is current, the snapshot rewritten)."""
        if self.matrix_only:
            raise IndexUnavailable(f"{self.name} is kept as a matrix, not as a Chroma collection")
        if self._coll is None:
            with self._lock:
                if self._coll is None:
                    snap = self._snap
                    self._open_collection()
                    if snap is not None and (
                        self.manifest != snap["manifest"] or self._coll.count() != len(snap["ids"])
                    ):
                        log.warning("Index %s changed since its local snapshot was written; "
                                    "reading it from Chroma.", self.name)
                        self._snap = None
                        self.ensure_current()  # rebuilds if stale, else rewrites the snapshot
        return self._coll

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
                self._drop_snapshot()
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
        self._coll = collection
        raw = (collection.metadata or {}).get(_MANIFEST_KEY)
        try:
            self.manifest = json.loads(raw) if raw else {}
        except ValueError:
            self.manifest = {}
        return collection

    def open(self) -> None:
        """Open the Chroma collection now (server start-up), not on the first query."""
        _ = self._collection

    def as_langchain(self):
        """This collection as a langchain ``VectorStore``, for chains built on CalmCall's
        index. Search itself queries Chroma directly: it needs only ids and distances, and
        the wrapper's documents + metadata fetch tripled the query time (1.2 vs 3.7 ms)."""
        thirdparty.chromadb()
        from langchain_chroma import Chroma

        self.open()
        return Chroma(
            client=self.client,
            collection_name=self.name,
            embedding_function=self.embedder.as_langchain(),
        )

    def _reason(self, m: dict, count: int) -> str:
        if m.get("schema") != SCHEMA:
            return f"index schema {m.get('schema')} != {SCHEMA}"
        if m.get("embedder") != self.embedder.manifest_id:
            return f"embedding model changed ({m.get('embedder')} -> {self.embedder.manifest_id})"
        if m.get("knowledge") != self.fingerprint:
            return "knowledge files changed since the index was built"
        if m.get("count") != count:
            return f"index holds {count} vectors, manifest says {m.get('count')}"
        return ""

    def staleness(self) -> str:
        """Why the stored index cannot be served as is ('' when it is current)."""
        if self.matrix_only:
            snap = self._snapshot()
            if snap is None:
                return "no index yet"
            reason = self._reason(snap["manifest"], len(snap["ids"]))
            if not reason:
                self.manifest = snap["manifest"]
            return reason
        snap = self._snapshot() if self._coll is None else None
        if snap is not None:
            if snap["manifest"] and not self._reason(snap["manifest"], len(snap["ids"])):
                self.manifest = snap["manifest"]
                return ""
            self._snap = None  # out of date: ask Chroma (a build replaces the snapshot)
        collection = self._collection
        m = self.manifest
        if not m:
            return "no index yet" if collection.count() == 0 else "index has no manifest"
        return self._reason(m, collection.count())

    # -- snapshot ---------------------------------------------------------------
    @property
    def _snapshot_path(self) -> Path | None:
        if self.matrix_only:  # the file is the store itself (MATRIX_ONLY_SUFFIXES)
            return Path(self.settings.data_dir) / MATRIX_DIR / f"{self.name}.npz"
        folder = self.store.snapshot_dir
        return None if folder is None else folder / f"{self.name}.npz"

    def _snapshot(self) -> dict | None:
        """The collection's snapshot when there is a readable one (read once)."""
        if self._snap_read:
            return self._snap
        self._snap_read = True
        path = self._snapshot_path
        if path is None or not path.exists():
            return None
        if not self.matrix_only and not (path.parent.parent / "chroma.sqlite3").exists():
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != SNAPSHOT_FORMAT or meta.get("name") != self.name:
                    return None
                ids, hashes = z["ids"].tolist(), z["hashes"].tolist()
        except Exception as exc:  # noqa: BLE001 - truncated zip, bad arrays: ask Chroma
            log.warning("ignoring unreadable index snapshot %s (%s)", path, exc)
            return None
        self._snap = {"manifest": meta.get("manifest") or {}, "ids": ids, "hashes": hashes, "data": None}
        return self._snap

    def _snapshot_data(self) -> tuple[list[str], list[dict], np.ndarray] | None:
        snap = self._snap
        if snap is None:
            return None
        if snap["data"] is None:
            try:
                with np.load(self._snapshot_path) as z:
                    metas = json.loads(str(z["metas"]))
                    vectors = np.asarray(z["embeddings"], dtype=np.float32)
            except Exception as exc:  # noqa: BLE001 - vanished or damaged since: ask Chroma
                log.warning("index snapshot %s unreadable (%s); reading Chroma", self._snapshot_path, exc)
                self._snap = None
                return None
            vectors.setflags(write=False)
            snap["data"] = (list(snap["ids"]), metas, vectors)
        return snap["data"]

    def _write_snapshot(self, ids: list[str], metas: list[dict], vectors: np.ndarray) -> None:
        path = self._snapshot_path
        if path is None:
            return
        metas = [dict(m or {}) for m in metas]
        vectors = np.array(vectors, dtype=np.float32)  # a copy: it is kept read-only
        if len(ids) == 0:
            vectors = np.zeros((0, self.embedder.dim), dtype=np.float32)
        meta = {"format": SNAPSHOT_FORMAT, "name": self.name, "manifest": self.manifest}
        hashes = [str(m.get("hash", "")) for m in metas]
        try:
            save_npz(
                path,
                meta=np.array(json.dumps(meta)),
                ids=np.array(list(ids), dtype=str),
                hashes=np.array(hashes, dtype=str),
                metas=np.array(json.dumps(metas)),
                embeddings=vectors,
            )
        except OSError as exc:  # a read-only data dir: Chroma is read every start, nothing else
            log.warning("could not write the index snapshot %s (%s)", path, exc)
            return
        vectors.setflags(write=False)
        self._snap = {"manifest": dict(self.manifest), "ids": list(ids), "hashes": hashes,
                      "data": (list(ids), metas, vectors)}
        self._snap_read = True

    def _drop_snapshot(self) -> None:
        """Before any write to Chroma: no process may trust the old snapshot meanwhile."""
        self._snap, self._snap_read = None, True
        path = self._snapshot_path
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove the index snapshot %s (%s)", path, exc)

    def _snapshot_from_chroma(self) -> None:
        if self._snapshot_path is None:
            return
        data = self._collection.get(include=["metadatas", "embeddings"])
        self._write_snapshot(data["ids"], data["metadatas"], _matrix(data["embeddings"], self.embedder.dim))

    # -- build ----------------------------------------------------------------
    def _is_noop(self, snap: dict) -> bool:
        """The snapshot shows exactly the wanted vectors under the wanted manifest."""
        core = {k: v for k, v in snap["manifest"].items() if k != "extra"}
        if core != self._wanted_manifest(len(self.docs)) or len(snap["ids"]) != len(self.docs):
            return False
        have = dict(zip(snap["ids"], snap["hashes"]))
        return all(have.get(i) == md["hash"] for i, (_, md) in self.docs.items())

    def build(self, progress: bool = False, force: bool = False) -> BuildReport:
        """Bring the index in line with the knowledge base, embedding only what changed."""
        start = time.perf_counter()
        report = BuildReport()
        with self._lock:
            if not force and self._coll is None:
                snap = self._snapshot()
                if snap is not None and self._is_noop(snap):
                    self.manifest = snap["manifest"]
                    report.unchanged = len(self.docs)
                    report.seconds = time.perf_counter() - start
                    return report
            if self.matrix_only:
                return self._build_matrix(report, start, progress, force)
            self._snap = None  # from here on Chroma is the truth
            return self._build(report, start, progress, force)

    def _rebuild_reason(self, m: dict, force: bool) -> str:
        """Why everything must be embedded and written again ('' when an update will do)."""
        if m and m.get("embedder") != self.embedder.manifest_id:
            return f"embedding model changed ({m.get('embedder')} -> {self.embedder.manifest_id})"
        if m and m.get("schema") != SCHEMA:
            return f"index schema {m.get('schema')} -> {SCHEMA}"
        return "forced rebuild" if force else ""

    @staticmethod
    def _bar(total: int, progress: bool):
        from tqdm import tqdm

        return tqdm(total=total, desc="Embedding passages", unit="vec", disable=not progress)

    def _embed(self, texts: list[str], bar) -> np.ndarray:
        """Vectors of ``texts`` from the embedding cache, embedding only what it lacks."""
        parts = []
        for i in range(0, len(texts), _BATCH):
            parts.append(self.embedder.embed_cached(texts[i : i + _BATCH], self.side == "query", self.cache))
            bar.update(len(parts[-1]))
        return np.vstack(parts) if parts else np.zeros((0, self.embedder.dim), dtype=np.float32)

    def _build_matrix(self, report: BuildReport, start: float, progress: bool, force: bool) -> BuildReport:
        """A matrix-only index: every vector from the embedding cache (only new texts are
        embedded), written to its file."""
        snap = self._snapshot()
        report.rebuilt_reason = self._rebuild_reason(snap["manifest"], force) if snap else ""
        have = {} if report.rebuilt_reason or not snap else dict(zip(snap["ids"], snap["hashes"]))
        wanted = self.docs
        ids = list(wanted)
        report.unchanged = sum(1 for i in ids if have.get(i) == wanted[i][1]["hash"])
        report.updated = sum(1 for i in ids if i in have and have[i] != wanted[i][1]["hash"])
        report.added = len(ids) - report.unchanged - report.updated
        report.deleted = sum(1 for i in have if i not in wanted)
        with self._bar(len(ids), progress) as bar:
            vectors = self._embed([wanted[i][0] for i in ids], bar)
        if self.cache is not None:
            self.cache.save()
        self._drop_snapshot()
        self.manifest = self._wanted_manifest(len(ids))
        metas = [wanted[i][1] for i in ids]
        self._write_snapshot(ids, metas, vectors)
        if self._snap is None:  # could not be written: served from memory in this process
            self._snap = {"manifest": dict(self.manifest), "ids": ids, "hashes": [m["hash"] for m in metas],
                          "data": (ids, [dict(m) for m in metas], vectors)}
        report.seconds = time.perf_counter() - start
        return report

    def _build(self, report: BuildReport, start: float, progress: bool, force: bool) -> BuildReport:
        collection = self._collection
        reason = self._rebuild_reason(self.manifest, force)
        if reason:
            log.warning("Rebuilding the index from scratch: %s.", reason)
            report.rebuilt_reason = reason
            collection = self._open_collection(rebuild_reason=reason)

        wanted = self.docs
        existing = collection.get(include=["metadatas"])
        have = {i: (md or {}).get("hash") for i, md in zip(existing["ids"], existing["metadatas"])}
        stale_ids = [i for i in have if i not in wanted]
        todo = [i for i, (_, md) in wanted.items() if have.get(i) != md["hash"]]
        report.unchanged = len(wanted) - len(todo)
        report.updated = sum(1 for i in todo if i in have)
        report.added = len(todo) - report.updated
        report.deleted = len(stale_ids)
        if stale_ids or todo:
            self._drop_snapshot()
        if stale_ids:
            collection.delete(ids=stale_ids)
        written = []
        if todo:
            limit = _UPSERT_BATCH
            try:
                limit = max(1, min(limit, int(self.client.get_max_batch_size())))
            except Exception:  # noqa: BLE001 - older clients / servers: our own limit
                pass
            with self._bar(len(todo), progress) as bar:
                for u in range(0, len(todo), limit):
                    chunk = todo[u : u + limit]
                    texts = [wanted[c][0] for c in chunk]
                    written.append(self._embed(texts, bar))
                    collection.upsert(ids=chunk, embeddings=written[-1],
                                      metadatas=[wanted[c][1] for c in chunk], documents=texts)
            if self.cache is not None:
                self.cache.save()
        manifest = self._wanted_manifest(len(wanted))
        old_core = {k: v for k, v in self.manifest.items() if k != "extra"}
        if old_core == manifest and "extra" in self.manifest:
            manifest["extra"] = self.manifest["extra"]  # derived data is still valid
        if manifest != self.manifest:
            self._drop_snapshot()
            collection.modify(metadata={_MANIFEST_KEY: json.dumps(manifest)})
            self.manifest = manifest
        if todo and len(todo) == len(wanted):
            # everything was just written (and the stale deleted): the snapshot is what we hold
            self._write_snapshot(todo, [wanted[c][1] for c in todo], np.vstack(written))
        else:
            self._snapshot_from_chroma()
        report.seconds = time.perf_counter() - start
        return report

    def ensure_current(self, progress: bool = False) -> BuildReport | None:
        """Serve only a current index: rebuild (with a message) when it is stale."""
        reason = self.staleness()
        if not reason:
            if self._snap is None and self._snapshot_path is not None:
                self._snapshot_from_chroma()  # so the next process need not open Chroma
            return None
        if reason == "no index yet":
            log.warning("Building the %s index for the first time (this happens once).", self.name)
        else:
            log.warning("Index %s is not current (%s); updating it now.", self.name, reason)
        return self.build(progress=progress)

    # -- query ----------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int = 60) -> list[tuple[str, float]]:
        """Nearest vectors as (vector id, cosine similarity)."""
        collection = self._collection
        try:
            res = collection.query(query_embeddings=vector[None, :], n_results=k, include=["distances"])
        except Exception as exc:
            raise IndexUnavailable(f"vector search failed: {exc}") from exc
        return [(vid, 1.0 - float(dist)) for vid, dist in zip(res["ids"][0], res["distances"][0])]

    def set_extra(self, extra: dict) -> None:
        """Store data derived from this index (e.g. score calibration) in its manifest."""
        with self._lock:
            data = self._snapshot_data()
            if self.matrix_only:
                if data is None:
                    self.build()
                    data = self._snapshot_data()
                self.manifest = {**self.manifest, "extra": extra}
                self._write_snapshot(*data)
                return
            self._drop_snapshot()
            collection = self._collection
            self.manifest = {**self.manifest, "extra": extra}
            collection.modify(metadata={_MANIFEST_KEY: json.dumps(self.manifest)})
            if data is not None:
                self._write_snapshot(*data)
            else:
                self._snapshot_from_chroma()

    def all_vectors(self) -> tuple[list[str], list[dict], np.ndarray]:
        """Ids, metadata and vectors of the whole collection. From the snapshot they are
        shared with this index, not copied (10 MB for the catalogue): treat them as read-only
        (the matrix is)."""
        data = self._snapshot_data()
        if data is None and self.matrix_only:
            self.ensure_current()
            data = self._snapshot_data()
        if data is not None:
            ids, metas, vectors = data
            return list(ids), metas, vectors
        data = self._collection.get(include=["metadatas", "embeddings"])
        return data["ids"], data["metadatas"], _matrix(data["embeddings"], self.embedder.dim)


def _matrix(embeddings, dim: int) -> np.ndarray:
    vectors = np.asarray(embeddings if embeddings is not None else [], dtype=np.float32)
    return vectors.reshape(0, dim) if vectors.size == 0 else vectors
