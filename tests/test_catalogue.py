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


def test_probe_matches_sklearn_and_is_kept_on_disk(coach, settings):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from calmcall.catalogue import Probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.array(["step:a", "step:b", "anti:c"] * 20)
    x[y == "step:a"] += 2.0
    probe = Probe.fit(x, list(y), c=10.0)
    ref = LogisticRegression(C=10.0, max_iter=3000).fit(x, y).predict_proba(x)
    assert np.allclose(probe.probabilities(x), ref, atol=1e-4)
    assert set(probe.step_probabilities(x[:1])[0]) == {"a", "b"}

    bridge = coach.bridge
    real = bridge.probe
    files = list((settings.data_dir / "probe").glob("probe-" + "?" * 16 + ".npz"))
    # the one in use is kept (probes shipped in knowledge/vectors for other catalogues are
    # seeded there too, and simply never match)
    back = [p for p in map(Probe.load, files) if p.classes == real.classes
            and p.weights.shape == real.weights.shape and np.allclose(p.weights, real.weights)]
    assert len(back) == 1
    # it separates the catalogue's own phrasings (training accuracy)
    pred = np.array(real.classes)[real.probabilities(bridge.matrix).argmax(axis=1)]
    truth = np.array([f"{k}:{i}" for k, i in zip(bridge.kinds, bridge.items)])
    assert (pred == truth).mean() > 0.9


def test_an_unreadable_probe_file_reads_as_missing(tmp_path):
    from calmcall.catalogue import Probe

    bad = tmp_path / "probe.npz"
    bad.write_bytes(b"not a numpy file")
    assert Probe.load(bad) is None
    bad.write_bytes(b"PK\x03\x04truncated zip")
    assert Probe.load(bad) is None
    bad.write_bytes(b"")
    assert Probe.load(bad) is None


def test_phrasing_files_may_add_harm_examples_and_name_only_known_harms(tmp_path, knowledge):
    """knowledge/phrasings/*.yaml may hold a ``harms:`` section (more examples per harm and
    language, as knowledge/candidates/harms_more.yaml does); an unknown harm id is an error."""
    import shutil

    import pytest
    from conftest import REPO

    from calmcall.catalogue import load_catalogue
    from calmcall.knowledge import KnowledgeError

    root = tmp_path / "knowledge"
    shutil.copytree(REPO / "knowledge", root, ignore=shutil.ignore_patterns("vectors", "candidates"))
    before = len(load_catalogue(root, knowledge).harms["threat"].examples["en"])
    (root / "phrasings" / "zz_more.yaml").write_text('harms:\n  threat:\n    en: ["I\'d tell him I know his car."]\n')
    cat = load_catalogue(root, knowledge)
    assert cat.harms["threat"].examples["en"][-1] == "I'd tell him I know his car."
    assert len(cat.harms["threat"].examples["en"]) == before + 1
    (root / "phrasings" / "zz_more.yaml").write_text('harms:\n  no_such_harm:\n    en: ["x"]\n')
    with pytest.raises(KnowledgeError, match="no_such_harm"):
        load_catalogue(root, knowledge)
