"""The steps catalogue and practice questions are complete and point at real passages."""

from calmcall.catalogue import CATEGORIES
from calmcall.models import LANGS


def test_steps_are_complete_and_grounded(coach, knowledge):
    cat = coach.catalogue
    assert len(cat.steps) >= 20
    for s in cat.steps.values():
        assert s.category in CATEGORIES
        for lang in LANGS:
            assert s.title.get(lang) and s.description.get(lang) and s.model_sentence.get(lang), (s.id, lang)
            assert len(s.examples.get(lang, [])) >= 3, (s.id, lang)
        assert s.passages
        for pid in s.passages:
            assert knowledge.get(pid).kind != "meta"
        # consensus weight = number of distinct articles that document the step
        assert s.weight == len({p.split("#")[0] for p in s.passages}), s.id


def test_anti_patterns_and_conflicts(coach, knowledge):
    cat = coach.catalogue
    assert {"yell_back", "interrupt", "long_hold", "hang_up_abruptly", "overpromise", "sarcasm"} <= set(cat.anti_patterns)
    hold = cat.conflicts["hold"]
    sides = [set(s.passages) for s in hold.sides]
    assert "004#p11" in sides[0] | sides[1] and len(sides) == 2
    articles = [{p.split("#")[0] for p in s} for s in sides]
    assert articles[0] != articles[1]  # a conflict is between different sources


def test_practice_questions(coach):
    qs = coach.catalogue.questions
    assert len(qs) >= 20
    for q in qs.values():
        assert all(q.text.get(lang) for lang in LANGS), q.id
        assert q.required and set(q.required) <= set(coach.catalogue.steps)
