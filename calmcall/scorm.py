"""SCORM packages (1.2, the default, or 2004 4th edition): the coach as an activity in any LMS.

A package is a zip with ``imsmanifest.xml`` (one SCO, with the mastery score) and a launch
page (``calmcall/scorm_package/``). In the LMS the launch page finds the runtime
(``window.API`` for 1.2, ``window.API_1484_11`` for 2004), reads the learner, asks the HR
API for an embed token for that learner and frames the coach; the coach posts each graded
result back (``postMessage``, origin and channel checked) and the launch page writes
score, passed/failed and session time to the LMS.

SCORM 2004: the mastery score is the primary objective's ``minNormalizedMeasure``
(``satisfiedByMeasure``), which the LMS hands the SCO as ``cmi.scaled_passing_score``; the
launch page writes ``cmi.score.scaled``/``raw``, ``cmi.completion_status``,
``cmi.success_status`` and ``cmi.session_time`` (ISO 8601 duration), then ``Commit`` and
``Terminate``. Same launch page, same credential, same coach: only the runtime differs.

Why a package credential and not an API key: a package is a file that HR uploads to an
LMS, where any course author (and, through the browser, any learner) can read it. So it
carries a credential (``pk_<id>.<secret>``, only a hash stored) that can do exactly one
thing, ``POST /v1/scorm/launch``: mint an embed token for a learner id of its
organisation, for the question or scenario it was made for. It cannot read attempts,
reports or anything else; it is rate-limited and revocable (``scorm revoke``,
``DELETE /v1/package-credentials/{id}``); a coach session it opens shows no stored
attempts (tokens it mints say ``"via": "scorm"``).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

from .inputs import InputError

if TYPE_CHECKING:
    from .storage import Organisation, PackageCredential

# The credential functions import SQLAlchemy and the store where they run: the practice
# page imports this module for the launch helpers, and SQLAlchemy (~0.5 s) would otherwise
# be paid by the first page a server draws.

ASSETS = Path(__file__).with_name("scorm_package")
LAUNCH_FILES = ("index.html", "calmcall-launch.js", "calmcall-launch.css", "calmcall-config.js")
IMSCP = "http://www.imsproject.org/xsd/imscp_rootv1p1p2"
ADLCP = "http://www.adlnet.org/xsd/adlcp_rootv1p2"
IMSMD = "http://www.imsglobal.org/xsd/imsmd_rootv1p2p1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = (f"{IMSCP} imscp_rootv1p1p2.xsd {IMSMD} imsmd_rootv1p2p1.xsd {ADLCP} adlcp_rootv1p2.xsd")
# SCORM 2004 4th edition (content packaging 1.1.4, ADL CP/sequencing/navigation 1.3, IMS SS 1.0)
IMSCP_2004 = "http://www.imsglobal.org/xsd/imscp_v1p1"
ADLCP_2004 = "http://www.adlnet.org/xsd/adlcp_v1p3"
ADLSEQ_2004 = "http://www.adlnet.org/xsd/adlseq_v1p3"
ADLNAV_2004 = "http://www.adlnet.org/xsd/adlnav_v1p3"
IMSSS_2004 = "http://www.imsglobal.org/xsd/imsss"
SCHEMA_LOCATION_2004 = (f"{IMSCP_2004} imscp_v1p1.xsd {ADLCP_2004} adlcp_v1p3.xsd {ADLSEQ_2004} adlseq_v1p3.xsd "
                        f"{ADLNAV_2004} adlnav_v1p3.xsd {IMSSS_2004} imsss_v1p0.xsd")
VERSIONS = ("1.2", "2004")  # "2004" is 4th edition
VERSION_LABELS = {"1.2": "SCORM 1.2", "2004": "SCORM 2004 4th edition"}
CREDENTIAL_SHAPE = re.compile(r"^pk_[0-9a-f]{12}\.[A-Za-z0-9_\-]{16,200}$")
ORIGIN_SHAPE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
CHANNEL_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
STRING_KEYS = ("scorm_connecting", "scorm_signed_in", "scorm_no_lms", "scorm_init_failed", "scorm_no_learner",
               "scorm_package_invalid", "scorm_package_revoked", "scorm_busy", "scorm_unreachable", "scorm_ready",
               "scorm_sent_passed", "scorm_sent_failed", "scorm_commit_failed", "scorm_finish", "scorm_finished")


class CredentialError(Exception):
    """A package credential that cannot be used: ``status`` 401 (unknown, wrong) or 403
    (revoked, or used from an LMS origin it was not made for)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _now() -> datetime:
    return datetime.now(UTC)


# -- package credentials --------------------------------------------------------------------
def create_credential(store, org: Organisation, *, label: str = "", question: str | None = None,
                      scenario: str | None = None, lms_origins: list[str] | None = None) -> tuple[str, str]:
    """Returns (credential id, full credential). Only the hash of the secret is stored."""
    from .storage import PackageCredential, hash_key

    cred_id = "pk_" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with store._session() as s:
        s.add(PackageCredential(org_id=org.id, cred_id=cred_id, secret_hash=hash_key(secret), label=label[:200],
                                question_id=question, scenario_id=scenario, lms_origins=list(lms_origins or [])))
        s.commit()
    return cred_id, f"{cred_id}.{secret}"


def _credential_json(c: PackageCredential, org_name: str) -> dict:
    return {
        "credential_id": c.cred_id,
        "organisation": org_name,
        "label": c.label,
        "question": c.question_id,
        "scenario": c.scenario_id,
        "lms_origins": list(c.lms_origins or []),
        "created_at": _iso(c.created_at),
        "revoked": c.revoked_at is not None,
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def list_credentials(store, org_id: int | None = None) -> list[dict]:
    from sqlalchemy import select

    from .storage import Organisation, PackageCredential

    with store._session() as s:
        query = select(PackageCredential, Organisation.name).join(Organisation,
                                                                  PackageCredential.org_id == Organisation.id)
        if org_id is not None:
            query = query.where(PackageCredential.org_id == org_id)
        return [_credential_json(c, name) for c, name in s.execute(query.order_by(PackageCredential.id)).all()]


def revoke_credential(store, cred_id: str, org_id: int | None = None) -> bool:
    """Revoke at once (the next launch is refused). ``org_id`` scopes it to one organisation."""
    from sqlalchemy import select

    from .storage import PackageCredential

    with store._session() as s:
        c = s.scalar(select(PackageCredential).where(PackageCredential.cred_id == cred_id))
        if c is None or c.revoked_at is not None or (org_id is not None and c.org_id != org_id):
            return False
        c.revoked_at = _now()
        s.commit()
        return True


def authenticate(store, credential: str, origin: str | None = None) -> tuple[Organisation, PackageCredential]:
    """The organisation and credential behind ``credential``, or CredentialError. 403 is
    said only when the secret matches, so a guesser learns nothing."""
    from sqlalchemy import select

    from .storage import Organisation, PackageCredential, hash_key

    credential = (credential or "").strip()
    if not CREDENTIAL_SHAPE.match(credential):
        raise CredentialError(401, "a package credential is required (pk_<id>.<secret>)")
    cred_id, _, secret = credential.partition(".")
    with store._session() as s:
        c = s.scalar(select(PackageCredential).where(PackageCredential.cred_id == cred_id))
        if c is None or not secrets.compare_digest(c.secret_hash, hash_key(secret)):
            raise CredentialError(401, "the package credential is not valid")
        if c.revoked_at is not None:
            raise CredentialError(403, f"the package credential {cred_id} was revoked; "
                                       "ask your administrator for a new package")
        if c.lms_origins and origin not in c.lms_origins:
            raise CredentialError(403, "this package may not be launched from this site")
        return s.get(Organisation, c.org_id), c


def mint_launch_token(org: Organisation, learner_id: str, ttl_s: int, now: float | None = None) -> str:
    """An embed token (``calmcall.api.tokens`` format, verified by ``verify_token``) that
    also says ``"via": "scorm"``: the app then shows no stored attempts in that session."""
    from .api import tokens

    if not learner_id:
        raise ValueError("learner_id must be non-empty text")
    issued = int(now if now is not None else time.time())
    payload = {"org": org.name, "sub": learner_id, "iat": issued, "exp": issued + int(ttl_s), "via": "scorm"}
    body = tokens._b64(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{tokens.VERSION}.{body}"
    return f"{signing_input}.{tokens._sign(org.secret, signing_input)}"


def token_via(token: str) -> str:
    """The ``via`` claim of a token that was already verified ("" when absent)."""
    from .api import tokens

    try:
        return str(tokens._parse(token)[1].get("via") or "")
    except tokens.TokenError:
        return ""


def embed_url(app_url: str, token: str, question: str | None = None, scenario: str | None = None) -> str:
    """The coach page a launch frames: Practice (``?question=``) or, for a scenario, the
    Role-play page (``/roleplay?scenario=``)."""
    params = {"embed": "true", "token": token}
    if scenario:
        app_url = app_url.split("?", 1)[0].rstrip("/") + "/roleplay"
        params["scenario"] = scenario
    elif question:
        params["question"] = question
    return app_url + ("&" if "?" in app_url else "?") + urlencode(params)


# -- what a package opens ---------------------------------------------------------------------
def scenario_titles(knowledge_dir: Path) -> dict[str, str]:
    """Role-play scenarios (``knowledge/scenarios/*.yaml``): id -> English title."""
    import yaml

    found: dict[str, str] = {}
    for path in sorted((knowledge_dir / "scenarios").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        sid = str(data.get("id") or path.stem)
        title = data.get("title") or data.get("name") or sid
        found[sid] = str(title.get("en") or next(iter(title.values()), sid)) if isinstance(title, dict) else str(title)
    return found


def _check_url(url: str, what: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"{what} must be an http(s) URL, e.g. https://coach.example.com/ (got {url!r})")
    return url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_origins(origins: list[str] | None) -> list[str]:
    out = []
    for o in origins or []:
        o = o.strip().rstrip("/")
        if not ORIGIN_SHAPE.match(o):
            raise InputError(f"an LMS origin is scheme://host[:port], e.g. https://lms.example.com (got {o!r})")
        out.append(o)
    return out


@dataclass(frozen=True)
class Package:
    data: bytes
    credential_id: str
    organisation: str
    question: str | None
    scenario: str | None
    mastery_score: int
    title: str
    version: str = "1.2"

    def summary(self) -> dict:
        return {"credential_id": self.credential_id, "organisation": self.organisation, "question": self.question,
                "scenario": self.scenario, "mastery_score": self.mastery_score, "title": self.title,
                "bytes": len(self.data), "scorm_version": self.version}



def _element(parent, tag: str, text, ns: str, attrs: dict):
    """One manifest element in namespace ``ns`` (under ``parent``, or a root)."""
    import xml.etree.ElementTree as ET

    node = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs) if parent is not None else ET.Element(f"{{{ns}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node

def manifest_xml(identifier: str, title: str, mastery_score: int, files: tuple[str, ...] = LAUNCH_FILES) -> bytes:
    """The SCORM 1.2 manifest: one organisation, one item, one SCO (the launch page)."""
    ET.register_namespace("", IMSCP)
    ET.register_namespace("adlcp", ADLCP)
    ET.register_namespace("xsi", XSI)

    def el(parent, tag, text=None, ns=IMSCP, **attrs):
        return _element(parent, tag, text, ns, attrs)

    root = el(None, "manifest", identifier=identifier, version="1.0",
              **{f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    meta = el(root, "metadata")
    el(meta, "schema", "ADL SCORM")
    el(meta, "schemaversion", "1.2")
    orgs = el(root, "organizations", default="calmcall_org")
    org = el(orgs, "organization", identifier="calmcall_org")
    el(org, "title", title)
    item = el(org, "item", identifier="calmcall_item", identifierref="calmcall_sco", isvisible="true")
    el(item, "title", title)
    el(item, "masteryscore", str(int(mastery_score)), ns=ADLCP)
    resources = el(root, "resources")
    res = el(resources, "resource", identifier="calmcall_sco", type="webcontent", href="index.html",
             **{f"{{{ADLCP}}}scormtype": "sco"})
    for name in files:
        el(res, "file", href=name)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def manifest_xml_2004(identifier: str, title: str, mastery_score: int,
                      files: tuple[str, ...] = LAUNCH_FILES) -> bytes:
    """The SCORM 2004 4th edition manifest: one organisation, one item, one SCO. The pass
    mark is the item's primary objective, satisfied by measure at ``mastery_score / 100``
    (the LMS gives it to the SCO as ``cmi.scaled_passing_score``); the delivery controls
    say the SCO itself sets completion and success."""
    ET.register_namespace("", IMSCP_2004)
    ET.register_namespace("adlcp", ADLCP_2004)
    ET.register_namespace("adlseq", ADLSEQ_2004)
    ET.register_namespace("adlnav", ADLNAV_2004)
    ET.register_namespace("imsss", IMSSS_2004)
    ET.register_namespace("xsi", XSI)

    def el(parent, tag, text=None, ns=IMSCP_2004, **attrs):
        return _element(parent, tag, text, ns, attrs)

    root = el(None, "manifest", identifier=identifier, version="1.0",
              **{f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION_2004})
    meta = el(root, "metadata")
    el(meta, "schema", "ADL SCORM")
    el(meta, "schemaversion", "2004 4th Edition")
    orgs = el(root, "organizations", default="calmcall_org")
    org = el(orgs, "organization", identifier="calmcall_org")
    el(org, "title", title)
    item = el(org, "item", identifier="calmcall_item", identifierref="calmcall_sco", isvisible="true")
    el(item, "title", title)
    seq = el(item, "sequencing", ns=IMSSS_2004)
    objectives = el(seq, "objectives", ns=IMSSS_2004)
    primary = el(objectives, "primaryObjective", ns=IMSSS_2004, objectiveID="calmcall_mastery",
                 satisfiedByMeasure="true")
    el(primary, "minNormalizedMeasure", f"{int(mastery_score) / 100:g}", ns=IMSSS_2004)
    el(seq, "deliveryControls", ns=IMSSS_2004, completionSetByContent="true", objectiveSetByContent="true")
    resources = el(root, "resources")
    res = el(resources, "resource", identifier="calmcall_sco", type="webcontent", href="index.html",
             **{f"{{{ADLCP_2004}}}scormType": "sco"})
    for name in files:
        el(res, "file", href=name)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _script_json(value) -> str:
    """JSON safe inside a <script> or a .js file served as HTML by a careless LMS."""
    return (json.dumps(value, ensure_ascii=False, indent=1).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _html_text(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def build_package(store, settings, catalogue, *, org_name: str, question: str | None = None,
                  scenario: str | None = None, api_url: str | None = None, app_url: str | None = None,
                  mastery_score: int | None = None, title: str | None = None, lang: str | None = None,
                  lms_origins: list[str] | None = None, label: str = "", version: str = "1.2") -> Package:
    """Make a package for ``org_name`` (and a new package credential inside it), SCORM
    ``version`` "1.2" (default) or "2004" (4th edition)."""
    from . import ui

    version = str(version or "1.2")
    if version not in VERSIONS:
        raise InputError(f"the SCORM version must be one of {', '.join(VERSIONS)} (got {version!r})")
    if question and scenario:
        raise InputError("give --question or --scenario, not both")
    api_url = _check_url(api_url or settings.api_url, "the API URL (--api-url or CALMCALL_API_URL)")
    app_url = _check_url(app_url or settings.app_url, "the app URL (--app-url or CALMCALL_APP_URL)")
    mastery = settings.mastery_score if mastery_score is None else int(mastery_score)
    if not 0 <= mastery <= 100:
        raise InputError("the mastery score must be 0-100")
    if lang is not None and lang not in ui.UI_LANGS:
        raise InputError(f"language must be one of {', '.join(ui.UI_LANGS)}")
    origins = check_origins(lms_origins)
    if scenario:
        scenarios = scenario_titles(settings.knowledge_dir)
        if not scenarios:
            raise InputError("role-play scenarios are not available in this build (knowledge/scenarios/)")
        if scenario not in scenarios:
            raise InputError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(scenarios))}")
        default_title = scenarios[scenario]
    elif question:
        if question not in catalogue.questions:
            raise InputError(f"unknown question {question!r}; see `python -m calmcall questions`")
        q = catalogue.questions[question]
        default_title = q.text.get(lang or "en") or q.text["en"]
    else:
        default_title = "Handling angry callers"
    title = (title or f"CalmCall Coach: {default_title}").strip()[:200]
    if not title or any(ord(c) < 32 for c in title):
        raise InputError("the title must be 1-200 printable characters")

    org = store.organisation(org_name)
    cred_id, credential = create_credential(store, org, label=label or title, question=question,
                                            scenario=scenario, lms_origins=origins)
    config = {
        "version": 1,
        "scorm_version": version,
        "organisation": org.name,
        "api_url": api_url.rstrip("/") + "/",
        "app_url": app_url,
        "credential": credential,
        "question": question,
        "scenario": scenario,
        "mastery_score": mastery,
        "lang": lang,
        "title": title,
        "strings": {code: {key: ui.t(key, code) for key in STRING_KEYS} for code in ui.UI_LANGS},
    }
    csp = (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           f"connect-src {_origin(api_url)}; frame-src {_origin(app_url)}")
    page = (ASSETS / "index.html").read_text(encoding="utf-8")
    page = page.replace("__CSP__", _html_text(csp)).replace("__TITLE__", _html_text(title))
    files = {
        "imsmanifest.xml": (manifest_xml_2004 if version == "2004" else manifest_xml)(
            f"calmcall_{cred_id}", title, mastery),
        "index.html": page.encode("utf-8"),
        "calmcall-launch.js": (ASSETS / "calmcall-launch.js").read_bytes(),
        "calmcall-launch.css": (ASSETS / "calmcall-launch.css").read_bytes(),
        "calmcall-config.js": f"window.CALMCALL_PACKAGE = {_script_json(config)};\n".encode(),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return Package(buf.getvalue(), cred_id, org.name, question, scenario, mastery, title, version)


# -- the coach's side (Streamlit, embed mode) --------------------------------------------------
def apply_launch(st, coach, binding: dict) -> dict:
    """Embed mode: remember this session's LMS channel (``?lms_origin=…&lms_channel=…``,
    set by the launch page), open the package's question (``?question=…``) once, and
    seal sessions opened by a package token (no stored attempts are shown)."""
    launch = st.session_state.get("lms_launch")
    if launch is not None and launch.get("token") == binding.get("token"):
        return launch
    params = st.query_params
    origin = str(params.get("lms_origin", "")).rstrip("/")
    channel = str(params.get("lms_channel", ""))
    launch = {
        "token": binding.get("token"),
        "origin": origin if ORIGIN_SHAPE.match(origin) else "",
        "channel": channel if CHANNEL_SHAPE.match(channel) else "",
        "sealed": token_via(binding.get("token") or "") == "scorm",
    }
    question = params.get("question")
    if question and question in coach.catalogue.questions:
        st.session_state.qid = question
    st.session_state.lms_launch = launch
    return launch


def sealed(st) -> bool:
    """Was this session opened by a SCORM package? Then it must not show stored attempts:
    anyone holding the package can open the coach as any learner id."""
    return bool((st.session_state.get("lms_launch") or {}).get("sealed"))


def result_message(result: dict, channel: str) -> dict:
    """What the coach posts to the launch page for one graded practice attempt
    (``result`` is the practice feedback, with ``report``) or role-play call
    (``{"score", "scenario"}``). Only the score and what was practised."""
    report = result.get("report") or result
    return {
        "type": "calmcall:result",
        "channel": channel,
        "id": result.setdefault("lms_id", secrets.token_hex(8)),
        "score": max(0, min(100, int(report.get("score", 0)))),
        "question": (report.get("question") or {}).get("id") if isinstance(report.get("question"), dict) else None,
        "scenario": report.get("scenario"),
    }


def notify_lms(st, result: dict | None) -> None:
    """In a SCORM launch, hand a graded result to the launch page (``postMessage`` to the
    LMS origin only; the launch page also checks our origin, the sender frame and the
    channel). A rerun posts the same message id again; the launch page ignores repeats."""
    launch = st.session_state.get("lms_launch")
    if not result or not launch or not launch.get("origin") or not launch.get("channel"):
        return
    message = result_message(result, launch["channel"])
    script = (f"<script>window.parent.postMessage({_script_json(message)}, "
              f"{_script_json(launch['origin'])});</script>")
    st.html(script, unsafe_allow_javascript=True)


# -- CLI: python -m calmcall scorm export | credentials | revoke -------------------------------
def command(args) -> int:
    """``scorm export --org NAME [--question ID | --scenario ID] [--version 1.2|2004] --out FILE``, ``scorm
    credentials [--org NAME]``, ``scorm revoke CREDENTIAL_ID``. Exit 0 ok, 2 bad input."""
    import sys

    from .api.keys import _org_name
    from .coach import Coach
    from .storage import StoreUnavailable

    try:
        coach = Coach()
        if args.scorm_command == "export":
            org = _org_name(args.org)
            package = build_package(
                coach.store, coach.settings, coach.catalogue, org_name=org, question=args.question,
                scenario=args.scenario, api_url=args.api_url, app_url=args.app_url,
                mastery_score=args.mastery_score, title=args.title, lang=args.lang, lms_origins=args.lms_origin,
                version=getattr(args, "version", None) or "1.2",
            )
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(package.data)
            if args.json:
                print(json.dumps({"out": str(out), **package.summary()}, ensure_ascii=False))
            else:
                what = f"question {package.question}" if package.question else (
                    f"scenario {package.scenario}" if package.scenario else "any practice question")
                print(f"wrote {out} ({len(package.data):,} bytes): {VERSION_LABELS[package.version]}, {what}, "
                      f"pass mark {package.mastery_score}")
                print(f"package credential {package.credential_id} for organisation {package.organisation!r} "
                      "(it can only open the coach for a learner)")
                print(f"revoke it with: python -m calmcall scorm revoke {package.credential_id}")
            return 0
        if args.scorm_command == "credentials":
            org_id = None
            if args.org:
                org = coach.store.organisation(_org_name(args.org), create=False)
                if org is None:
                    print(f"error: no organisation {args.org!r}", file=sys.stderr)
                    return 2
                org_id = org.id
            rows = list_credentials(coach.store, org_id)
            for c in rows:
                if args.json:
                    print(json.dumps(c, ensure_ascii=False))
                else:
                    state = "revoked" if c["revoked"] else "active"
                    what = c["question"] or (f"scenario {c['scenario']}" if c["scenario"] else "any question")
                    print(f"{c['credential_id']:16} {state:8} {(c['created_at'] or '')[:19]}  {c['organisation']}  {what}")
            if not rows and not args.json:
                print("no package credentials yet; make a package with: python -m calmcall scorm export --org NAME")
            return 0
        if args.scorm_command == "revoke":
            if revoke_credential(coach.store, args.credential_id):
                print(f"revoked {args.credential_id}: packages carrying it no longer open the coach")
                return 0
            print(f"error: no active package credential {args.credential_id!r}", file=sys.stderr)
            return 2
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"error: unknown scorm command {args.scorm_command!r}", file=sys.stderr)
    return 2
