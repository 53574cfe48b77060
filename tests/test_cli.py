"""The CLI as users and other tools call it (JSON shapes are contracts)."""

import json

from conftest import run_cli


def _env(settings):
    return {"CALMCALL_DATA_DIR": str(settings.data_dir)}


def test_search_json_contract(coach, settings):
    r = run_cli("search", "What if the caller swears at me?", "--k", "3", "--json", env=_env(settings))
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert set(out) == {"question", "language", "in_scope", "passages"}
    assert len(out["passages"]) == 3
    assert set(out["passages"][0]) == {"id", "article", "language", "heading", "text", "text_en", "score"}


def test_search_batch_keeps_ids_and_reports_bad_lines(coach, settings, tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(
        json.dumps({"id": "a", "question": "Ska jag lägga på luren?"}) + "\n"
        + "not json\n"
        + json.dumps({"id": "c", "question": "  "}) + "\n"
        + json.dumps({"id": "d", "question": "Hoe blijf ik kalm?"}) + "\n"
    )
    r = run_cli("search", "--batch", str(f), "--k", "2", env=_env(settings))
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x.get("id") for x in lines] == ["a", None, "c", "d"]
    assert "passages" in lines[0] and "passages" in lines[3]
    assert "error" in lines[1] and "empty" in lines[2]["error"]
    assert r.returncode == 3  # some lines failed, none were lost


def test_empty_question_exit_code_2(settings):
    r = run_cli("search", "   ", env=_env(settings))
    assert r.returncode == 2
    assert b"empty" in r.stderr


def test_huge_question_is_truncated_with_warning(coach, settings):
    r = run_cli("search", "How do I calm an angry caller? " * 3500, "--json", env=_env(settings))
    assert r.returncode == 0
    assert b"only the first" in r.stderr


def test_undecodable_bytes_are_a_clear_error(settings):
    r = run_cli("grade", input=b"\xff\xfe\xfa not utf-8 \xc3\x28", env=_env(settings))
    assert r.returncode == 2
    assert b"not valid UTF-8" in r.stderr


def test_index_is_idempotent(coach, settings):
    r = run_cli("index", env=_env(settings))
    assert r.returncode == 0, r.stderr.decode()
    assert b"0 added, 0 updated, 0 deleted" in r.stdout


def test_grade_json_contract(coach, settings):
    r = run_cli("grade", "--question", "q01_angry_call", "--json",
                input=b"I listen to the whole story and stay calm, then I apologise.", env=_env(settings))
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert {"score", "covered", "missing", "anti_patterns", "tips", "model_answer", "language"} <= set(out)
    assert {"step", "evidence", "passages"} <= set(out["covered"][0])


def test_grade_empty_answer_exit_code_2(settings):
    r = run_cli("grade", "--question", "q01_angry_call", input=b"   \n", env=_env(settings))
    assert r.returncode == 2 and b"empty" in r.stderr


def test_grade_unknown_question_id_exit_code_2(coach, settings):
    r = run_cli("grade", "--question", "q99_nope", input=b"I stay calm and listen.", env=_env(settings))
    assert r.returncode == 2 and b"unknown question id" in r.stderr


def test_grade_batch_keeps_ids(coach, settings, tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"id": "x1", "question": "q02_swearing", "answer": "I stay calm and explain our policy."}) + "\n"
                 + json.dumps({"id": "x2", "answer": ""}) + "\n")
    r = run_cli("grade", "--batch", str(f), env=_env(settings))
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [x["id"] for x in lines] == ["x1", "x2"]
    assert "score" in lines[0] and "error" in lines[1]


def test_ask_json_contract(coach, settings):
    r = run_cli("ask", "Ska jag sätta en arg kund i väntan?", "--json", env=_env(settings))
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert {"question", "language", "in_scope", "answer", "citations", "steps", "conflicts"} <= set(out)
    assert out["language"] == "sv" and out["citations"]
    assert {"passage", "article", "language", "quote", "quote_en"} <= set(out["citations"][0])


def test_undecodable_argv_is_a_clear_error(settings):
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "calmcall", "search", b"\xff\xfe caller"], capture_output=True,
                       env={**os.environ, **_env(settings)}, cwd=str(__import__("conftest").REPO), timeout=120)
    assert r.returncode == 2 and b"not valid UTF-8" in r.stderr


def test_text_output_quotes_sources_in_the_users_language(coach, settings):
    """A Hungarian trainer reads the sources in Hungarian (our translations), not only in the
    original Swedish or Italian with an English line under it; a missed step in a graded
    Hungarian answer quotes its passage in Hungarian."""
    r = run_cli("ask", "Egy hívó folyton sértegeti a kollégámat. Mit tegyen?", env=_env(settings))
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "\n      HU: " in out and "\n      EN: " not in out, [ln[:80] for ln in out.splitlines() if ln.startswith("  ")]
    r = run_cli("grade", "--question", "q01_angry_call", input=b"Meghallgattam, nyugodt maradtam.",
                env=_env(settings))
    missed = [line for line in r.stdout.decode().splitlines() if line.startswith("        [")]
    assert missed and all(" the " not in line.lower() for line in missed), missed
