"""Ask's scope classifier: the out-of-scope topics written for it (knowledge/scope_anchors.yaml
``topics``, eight languages each) and the in-scope side of their boundaries feed it; questions
on unrelated topics (IT how-tos, HR administration, trivia, recipes) are refused while
trainer questions that share their words (the boss, a colleague, the team) are answered."""

import pytest

from calmcall.knowledge import load_yaml

LANGS = {"en", "sv", "hu", "it", "nl", "de", "es", "fr"}


def _anchors(coach):
    return load_yaml((coach.settings.knowledge_dir / "scope_anchors.yaml").read_bytes()) or {}


def test_every_topic_is_written_in_all_eight_languages(coach):
    topics = _anchors(coach)["topics"]
    assert len(topics) >= 10
    for name, by_lang in topics.items():
        assert set(by_lang) == LANGS, name
        assert all(len(by_lang[lang]) >= 2 for lang in LANGS), name
    assert set(_anchors(coach)["in_scope"]) == LANGS


def test_topics_are_out_of_scope_texts_with_their_group(coach):
    clf = coach.answerer.situations
    texts, inside, _, groups = clf.scope_texts_grouped()
    assert (texts, inside) == tuple(clf.scope_texts()[:2])
    topics = _anchors(coach)["topics"]
    by_text = dict(zip(texts, zip(inside, groups)))
    for name, by_lang in topics.items():
        for t in by_lang["de"]:
            is_in, group = by_text[" ".join(t.split())]
            # a text also written elsewhere keeps its first group
            assert is_in is False and group in (f"topic:{name}", "out_of_scope"), t
    assert sum(g.startswith("topic:") for g in groups) >= 8 * 2 * 12
    for t in _anchors(coach)["in_scope"]["fr"]:
        assert by_text[" ".join(t.split())][0] is True


@pytest.mark.parametrize("question", [
    "How do I set up a VPN on Windows 11?",
    "Wie verbinde ich meinen Drucker mit dem WLAN?",
    "How many days of sick leave do I get per year?",
    "Hur ansöker jag om föräldraledighet?",
    "Hoe maak ik pannenkoeken?",
    "Quelle est la capitale de l'Australie ?",
])
def test_unrelated_questions_are_refused(coach, question):
    assert coach.ask(question).in_scope is False


@pytest.mark.parametrize("question", [
    "What should I do when a caller keeps insulting me and won't stop?",
    "A customer demands a refund we are not allowed to give.",
    "Il cliente continua a insultarmi, cosa faccio?",
    "Der Kunde will sofort meinen Vorgesetzten sprechen.",
])
def test_trainer_questions_are_answered(coach, question):
    assert coach.ask(question).in_scope is True


def test_language_balance_keeps_a_phrasing_rich_language_from_leaning_in_scope():
    """Language a has nine in-scope texts per out-of-scope one, language b one to one. With
    each (class, language) group weighing the same, a's many in-scope texts count less, so
    a question near a's out-of-scope texts reads less in scope than with class balance."""
    import numpy as np

    from calmcall.situations import ScopeModel, ScopeSpec

    rng = np.random.default_rng(0)
    matrix = np.vstack([rng.normal([1.5, 0], 0.3, (90, 2)), rng.normal([0, 1.5], 0.3, (10, 2)),
                        rng.normal([0.3, -0.6], 0.2, (10, 2)), rng.normal([-1, -1], 0.3, (10, 2))]).astype(np.float32)
    inside = np.array([True] * 100 + [False] * 20)
    langs = ["a"] * 90 + ["b"] * 10 + ["a"] * 10 + ["b"] * 10
    near_a_out = np.array([0.3, -0.6], dtype=np.float32)
    p = {bal: ScopeModel.fit(matrix, inside, [["w"]] * 120, ScopeSpec(balance=bal), langs).probability(near_a_out, ["w"])
         for bal in ("class", "language")}
    assert p["language"] < p["class"], p
    assert ScopeSpec(balance="language").recipe_json() != ScopeSpec().recipe_json()  # a refit, not a stale file
