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
