"""Hybrid cross-lingual retrieval on the real index."""

from pathlib import Path

import numpy as np
import pytest

from calmcall.inputs import InputError


@pytest.mark.parametrize(
    "question,expected",
    [
        ("Should I put an angry customer on hold?", {"004#p11"}),
        ("Ska jag sätta en arg kund i väntan?", {"004#p11"}),
        ("Mikor fejezhetem be a hívást, ha az ügyfél folyamatosan káromkodik?", {"000#p6", "004#p6", "000#p7", "000#p8", "002#p8"}),
        ("Devo passare la chiamata al mio supervisore se il cliente è fuori controllo?", {"000#p7", "002#p7"}),
        ("Hoe ga ik om met een klant die een speciale behandeling eist?", {"003#p3", "003#p4", "003#p5", "003#p12", "003#p13", "003#p14", "003#p1"}),
        ("Sollte ich mich entschuldigen, auch wenn die Firma nichts falsch gemacht hat?", {"001#p26", "001#p27", "001#p28", "001#p29", "004#p10"}),
    ],
)
def test_cross_lingual_questions_find_the_teaching_passage(coach, question, expected):
    res = coach.search(question, k=3)
    assert res.in_scope
    assert expected & {h.id for h in res.passages}, [h.id for h in res.passages]


def test_result_shape_scores_and_dedup(coach):
    res = coach.search("What if the caller swears at me?", k=5)
    ids = [h.id for h in res.passages]
    assert len(ids) == len(set(ids)) == 5  # one entry per passage, not per language version
    scores = [h.score for h in res.passages]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    top = res.passages[0]
    assert top.text and top.text_en and top.article == top.id.split("#")[0]
    assert res.language == "en"


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Hur lång tid tar det att koka pasta?", "Come si installa Python su Windows?"],
)
def test_out_of_scope_questions_are_recognised(coach, question):
    assert not coach.search(question).in_scope


def test_empty_question_is_rejected(coach):
    with pytest.raises(InputError, match="empty"):
        coach.search("   \n ")


def test_huge_question_is_truncated_not_refused(coach):
    res = coach.search("How do I stay calm with an angry caller? " * 3000)
    assert len(res.question) <= coach.settings.max_question_chars
    assert res.in_scope


def test_calibration_is_derived_not_hard_coded(coach):
    cal = coach.retriever.calibration
    for c in cal.values():
        assert 0.5 < c.threshold < 1.0 and c.scale > 0
    # the stored manifest carries it, so a restart does not refit
    assert "calibration" in coach.retriever.index.manifest["extra"]


def test_advice_passages_are_listed_before_an_overview(coach):
    """004#p1/p3 only introduce the article's steps; a search lists the advice first, while
    ask (which presents an overview as its article's steps) still sees them in place."""
    q = "How would you handle an angry call from a customer?"
    top = [h.id for h in coach.search(q, k=3).passages]
    assert not any(coach.knowledge.is_overview(p) for p in top[:2]), top
    raw = [h.id for h in coach.retriever.search(q, k=3, demote_overviews=False).passages]
    assert coach.knowledge.is_overview(raw[0]), raw


def test_dense_search_returns_the_exact_nearest_vectors(coach):
    """Chroma's HNSW is approximate; with its default ef_search it missed true
    neighbours (once the nearest) for 9 of 90 eval questions. Ours must be exact."""
    import json
    from pathlib import Path

    r = coach.retriever
    k = r.fusion.dense_k
    rows = (Path(__file__).parents[1] / "eval" / "retrieval.jsonl").read_text("utf-8").splitlines()
    questions = [json.loads(x)["question"] for x in rows if x.strip()]
    vectors = r.embedder.query(questions)
    for index in (r.index, r.queries):
        ids, _, matrix = index.all_vectors()
        for v in vectors:
            kth_best = np.sort(matrix @ v)[-k]  # compared by score: robust to ties
            scores = [s for _, s in index.query(v, k=k)]
            assert len(scores) == k and min(scores) >= kth_best - 1e-5


def test_fusion_settings_are_validated(tmp_path):
    """The fusion numbers live in knowledge/retrieval.yaml; a typo or a negative weight
    is refused when search starts, not silently ignored."""
    import pydantic

    from calmcall.retrieval import FUSION_FILE, Fusion

    shipped = Fusion.load(Path(__file__).parents[1] / "knowledge")
    assert shipped.rrf_k > 0 and shipped.dense_k >= 5
    good = (Path(__file__).parents[1] / "knowledge" / FUSION_FILE).read_text("utf-8")
    for bad in (good + "\nlexical_weigth: 0.5\n", good.replace("lexical_weight: 0.6", "lexical_weight: -1")):
        (tmp_path / FUSION_FILE).write_text(bad, "utf-8")
        with pytest.raises(pydantic.ValidationError):
            Fusion.load(tmp_path)
