"""Voice over the HR API: ``POST /v1/transcribe`` and audio on ``POST /v1/grade`` with the
real recogniser and grader, on speech espeak-ng makes now. Limits answer 413 / 415 / 422
problem documents, never a 500."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from voice_audio import REPO, long_tone, require_tools, silence, speak

from calmcall.api.app import create_app

ANSWER = ("First I would stay calm and let the caller finish without interrupting. "
          "Then I would acknowledge how frustrated they are and apologize for the trouble.")
CONTRACT = {"text", "language", "duration_s", "words_per_minute", "fillers", "long_pauses", "segments"}


@pytest.fixture(scope="module")
def api_settings(settings):
    return settings.model_copy(update={"rate_limit_per_minute": 0})


@pytest.fixture(scope="module")
def client(coach, api_settings):
    require_tools()
    with TestClient(create_app(api_settings, coach)) as c:
        yield c


@pytest.fixture(scope="module")
def key(coach):
    return coach.store.create_key(f"voice-{uuid.uuid4().hex[:8]}")[1]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    require_tools()
    return speak(ANSWER, "en", tmp_path_factory.mktemp("api-voice") / "answer.wav").read_bytes()


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


def test_transcribe_returns_the_cli_contract(client, key, spoken):
    r = client.post("/v1/transcribe", files={"audio": ("answer.wav", spoken, "audio/wav")},
                    data={"lang": "en"}, headers=_auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert CONTRACT <= set(body) and body["language"] == "en"
    assert "stay calm" in body["text"].lower() and body["segments"][0]["text"]
    assert body["words_per_minute"] > 0 and body["duration_s"] > 5


def test_transcribe_needs_a_key(client, spoken):
    _problem(client.post("/v1/transcribe", files={"audio": ("a.wav", spoken, "audio/wav")}), 401)


@pytest.mark.parametrize("name,status,problem", [
    ("text", 415, "not_audio"),
    ("pdf", 415, "not_audio"),
    ("corrupt", 422, "corrupt"),
    ("silent", 422, "silent"),
    ("empty", 422, "empty"),
])
def test_transcribe_bad_files_are_clear_problems(client, key, spoken, tmp_path, name, status, problem):
    data = {
        "text": b"First I would stay calm.",
        "pdf": b"%PDF-1.7\n" + b"\0" * 500,
        "corrupt": b"\x1a\x45\xdf\xa3" + b"\0" * 999,
        "silent": silence(tmp_path / "s.wav", 3.0).read_bytes() if name == "silent" else b"",
        "empty": b"",
    }[name]
    body = _problem(client.post("/v1/transcribe", files={"audio": ("x.wav", data, "audio/wav")},
                                headers=_auth(key)), status)
    assert body["problem"] == problem


def test_twenty_minutes_is_422_with_the_limit(client, key, tmp_path):
    data = long_tone(tmp_path / "long.wav", 20 * 60, rate=8000).read_bytes()
    body = _problem(client.post("/v1/transcribe", files={"audio": ("long.wav", data, "audio/wav")},
                                headers=_auth(key)), 422)
    assert body["problem"] == "too_long" and "20:00" in body["detail"] and "10:00" in body["detail"]


def test_too_large_is_413_before_and_after_the_body_is_read(coach, api_settings, key, spoken):
    small = api_settings.model_copy(update={"max_audio_bytes": 100_000})
    with TestClient(create_app(small, coach)) as c:
        body = _problem(c.post("/v1/transcribe", files={"audio": ("a.wav", spoken, "audio/wav")},
                               headers=_auth(key)), 413)
        assert "CALMCALL_MAX_AUDIO_BYTES" in body["detail"]
        r = c.post("/v1/grade", json={"answer": "x" * 300_000}, headers=_auth(key))
        _problem(r, 413)  # JSON keeps its own, smaller limit


def test_transcribe_validates_fields(client, key, spoken):
    _problem(client.post("/v1/transcribe", data={"lang": "en"}, headers=_auth(key)), 422)
    _problem(client.post("/v1/transcribe", files={"audio": ("a.wav", spoken, "audio/wav")}, data={"lang": "ja"},
                         headers=_auth(key)), 422)


def test_grade_accepts_audio_and_reports_transcript_and_delivery(client, coach, key, spoken):
    r = client.post("/v1/grade", files={"audio": ("answer.wav", spoken, "audio/wav")},
                    data={"question": "q01_angry_call", "lang": "en"}, headers=_auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert CONTRACT <= set(body["transcript"])
    text = body["transcript"]["text"]
    from_text = coach.grade(text, "q01_angry_call").model_dump(mode="json")
    assert body["score"] == from_text["score"] and body["steps"] == from_text["steps"]  # delivery not in the score
    assert {s["step"] for s in body["covered"]} and body["delivery"]["remarks"]
    assert all(p["passage"].startswith("001#") for rm in body["delivery"]["remarks"] for p in rm["passages"])


def test_grade_audio_records_the_transcript_once(client, key, spoken):
    learner = f"emp-{uuid.uuid4().hex[:6]}"
    headers = {**_auth(key), "Idempotency-Key": f"voice-{learner}"}
    form = {"question": "q01_angry_call", "learner_id": learner}
    first = client.post("/v1/grade", files={"audio": ("a.wav", spoken, "audio/wav")}, data=form, headers=headers)
    assert first.status_code == 200, first.text
    again = client.post("/v1/grade", files={"audio": ("a.wav", spoken, "audio/wav")}, data=form, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["attempt"] == first.json()["attempt"] and again.json()["transcript"]
    assert first.json()["attempt"]["answer"] == first.json()["transcript"]["text"]
    attempts = client.get(f"/v1/learners/{learner}/attempts", headers=_auth(key)).json()["attempts"]
    assert len(attempts) == 1


def test_grade_multipart_problems(client, key, spoken):
    _problem(client.post("/v1/grade", files={"audio": ("a.txt", b"hello", "text/plain")}, headers=_auth(key)), 415)
    _problem(client.post("/v1/grade", data={"question": "q01_angry_call"}, files={"other": ("a", b"x", "x/y")},
                         headers=_auth(key)), 422)  # no `audio` field
    _problem(client.post("/v1/grade", files={"audio": ("a.wav", spoken, "audio/wav")}, data={"answer": "typed"},
                         headers=_auth(key)), 422)  # unknown field
    _problem(client.post("/v1/grade", files={"audio": ("a.wav", spoken, "audio/wav")},
                         data={"question": "q99_nope"}, headers=_auth(key)), 422)


def test_openapi_documents_both_bodies(client):
    spec = client.get("/openapi.json").json()
    grade = spec["paths"]["/v1/grade"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(grade) and grade["application/json"]["examples"]
    assert "audio" in grade["multipart/form-data"]["schema"]["required"]
    transcribe = spec["paths"]["/v1/transcribe"]["post"]
    assert "multipart/form-data" in transcribe["requestBody"]["content"]
    assert {"413", "415", "422"} <= set(transcribe["responses"])


def test_a_german_recording_gets_its_delivery_remarks_in_german(client, key, tmp_path):
    """German is an answer language (not a UI one): spoken in German, graded, and the
    delivery remarks come in German, citing article 001."""
    german = ("Zuerst würde ich ruhig bleiben und den Kunden ausreden lassen. Dann würde ich mich für die "
              "Unannehmlichkeiten entschuldigen und erklären, was ich als Nächstes tue.")
    audio = speak(german, "de", tmp_path / "de.wav").read_bytes()
    r = client.post("/v1/grade", files={"audio": ("de.wav", audio, "audio/wav")},
                    data={"question": "q01_angry_call", "lang": "de"}, headers=_auth(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["transcript"]["language"] == "de" and "Kunden" in body["transcript"]["text"]
    delivery = body["delivery"]
    from calmcall.delivery import delivery_config

    assert delivery["language"] == "de"
    assert delivery["band"] == delivery_config(REPO / "knowledge")["pace"]["band"]["de"]  # German's own band
    assert "Aufnahme" in delivery["note"]
    assert any("Wörter pro Minute" in rm["text"] for rm in delivery["remarks"]), delivery["remarks"]
    assert all(p["passage"].startswith("001#") for rm in delivery["remarks"] for p in rm["passages"])
