"""``python -m calmcall …``: index, search, grade, ask, questions, serve, keys, scorm, xapi.

Exit codes: 0 ok, 2 bad input (empty, undecodable, unknown id), 1 anything else.
JSON shapes printed here are contracts shared with the API.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .inputs import InputError, decode

log = logging.getLogger("calmcall")


def _arg_text(value: str, what: str) -> str:
    """argv text: undecodable bytes arrive as lone surrogates; refuse them clearly."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} contains bytes that are not valid UTF-8 text") from None
    return value


def _read_stdin(what: str) -> str:
    data = sys.stdin.buffer.read()
    return decode(data, what)


def _emit(obj) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _batch(path: str, fields: tuple[str, ...], handle: Callable[[dict], object]) -> int:
    """JSON lines in, one JSON result per line out with the same ``id``; a bad line yields
    an ``error`` object for that id and the batch goes on (nothing is lost)."""
    raw = Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read()
    text = decode(raw, f"batch file {path}")
    failures = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise InputError("each line must be a JSON object")
        except (ValueError, InputError) as exc:
            failures += 1
            _emit({"id": None, "line": lineno, "error": f"line {lineno}: not a JSON object ({exc})"})
            continue
        rid = row.get("id")
        missing = [f for f in fields if not isinstance(row.get(f), str)]
        if missing:
            failures += 1
            _emit({"id": rid, "error": f"missing or non-text field(s): {', '.join(missing)}"})
            continue
        try:
            result = handle(row)
        except (InputError, KeyError) as exc:
            failures += 1
            _emit({"id": rid, "error": str(exc).strip("'\"")})
            continue
        payload = result.model_dump(mode="json") if hasattr(result, "model_dump") else dict(result)
        _emit({"id": rid, **payload})
    return 0 if failures == 0 else 3


def _coach(args, progress: bool = False):
    from .coach import Coach

    return Coach(progress=progress)


# -- commands -------------------------------------------------------------------
def _build_index(coach, progress: bool = False, force: bool = False):
    """Bring every collection (passages, doc2query questions, catalogue) up to date; the
    relevance calibration and the catalogue probes are fitted when they are missing."""
    from .catalogue import phrasing_docs
    from .index import ChromaStore, VectorIndex, query_docs, vector_docs

    settings, knowledge = coach.settings, coach.knowledge
    store = ChromaStore(settings)  # one client, opened only if something must be read or written
    reports, indexes = [], []
    for name, docs, side, fingerprint in (
        (settings.collection, vector_docs(knowledge), "passage", knowledge.fingerprint),
        (f"{settings.collection}_queries", query_docs(knowledge), "query", knowledge.fingerprint),
        (f"{settings.collection}_catalogue", phrasing_docs(coach.catalogue), "query", coach.catalogue.fingerprint),
    ):
        index = VectorIndex(settings, coach.embedder, docs, fingerprint, name=name, side=side,
                            client=store, cache=coach.vector_cache)
        reports.append((name, index.build(progress=progress, force=force)))
        indexes.append(index)
    changed = any(r.changed or r.rebuilt_reason for _, r in reports)
    if changed or "calibration" not in (indexes[0].manifest.get("extra") or {}):
        _ = coach.retriever  # the relevance calibration is fitted and stored when needed
    coach.load_probes()  # fitted now (or read back), not by the first `grade`
    return reports


def cmd_index(args) -> int:
    """Build or update every collection (passages, doc2query questions, catalogue)."""
    import time

    from .coach import Coach

    coach = Coach(progress=True)
    settings = coach.settings
    _ = coach.knowledge
    start = time.perf_counter()
    reports = _build_index(coach, progress=sys.stderr.isatty(), force=args.force)
    where = settings.chroma_url or str(settings.resolved_chroma_path)
    for name, r in reports:
        print(
            f"{name}: {r.added} added, {r.updated} updated, {r.deleted} deleted, {r.unchanged} unchanged"
            + (f" (rebuilt: {r.rebuilt_reason})" if r.rebuilt_reason else "")
        )
    print(f"index at {where} is current ({time.perf_counter() - start:.2f}s)")
    if args.save_cache:
        keep = set()
        cache, model = coach.vector_cache, coach.embedder.manifest_id
        for index in (coach.retriever.index, coach.retriever.queries, coach.bridge.index):
            ids, _, vectors = index.all_vectors()
            for vid, vec in zip(ids, vectors):
                if vid in index.docs:
                    key = cache.key(model, index.docs[vid][0], index.side == "query")
                    # The encoder's own vector where the cache has it: Chroma hands back a
                    # copy it has normalised again, which differs in the last bits (and
                    # would differ again after the next build), and the probes' file names
                    # hash the vectors a build from this file gets.
                    if cache.get(key) is None:
                        cache.put(key, vec)
                    keep.add(key)
        inside, outside = coach.retriever.scope_texts()
        keep |= {cache.key(model, t, True) for t in inside + outside}
        path = coach.vector_cache.save(settings.knowledge_dir / "vectors", keep=keep)
        print(f"vector cache written to {path} ({len(keep)} vectors)")
        for probe in _ship_probes(settings):
            print(f"probe written to {probe}")
    return 0


def _ship_probes(settings) -> list[Path]:
    """Build the index as a fresh checkout does (an empty data dir, the shipped vectors),
    fit or read back the catalogue probes there, and ship them next to the vectors: a fresh
    checkout then reads them instead of fitting them (~30 s). Shipped probes that no longer
    fit are removed."""
    import shutil
    import tempfile

    import numpy as np

    from .catalogue import Probe
    from .coach import PROBE_GLOB, Coach
    from .knowledge import YAML_CACHE

    shipped = settings.knowledge_dir / "vectors"
    with tempfile.TemporaryDirectory(prefix="calmcall-ship-") as tmp:
        fresh = Coach(settings.model_copy(update={"data_dir": Path(tmp), "chroma_path": None, "chroma_url": ""}))
        try:
            _build_index(fresh)
            in_use = [v for v in vars(fresh.bridge).values() if isinstance(v, Probe)]
            found: dict[int, Path] = {}  # in-use probe -> its file (the newest of equal copies)
            for f in sorted((Path(tmp) / "probe").glob(PROBE_GLOB), key=lambda f: f.stat().st_mtime):
                with np.load(f) as z:
                    weights, classes = z["weights"], [str(c) for c in z["classes"]]
                for i, p in enumerate(in_use):
                    if p.classes == classes and p.weights.shape == weights.shape and np.array_equal(p.weights, weights):
                        found[i] = f
            keep = [shipped / f.name for f in found.values()]
            for f in found.values():
                shutil.copyfile(f, shipped / f.name)
        finally:
            YAML_CACHE.configure(settings.data_dir / "cache")
    for old in shipped.glob(PROBE_GLOB):
        if old not in keep:
            old.unlink()
    return keep


def _print_search(result) -> None:
    scope = "" if result.in_scope else "  (out of scope: the articles do not cover this)"
    print(f"[{result.language}] {result.question}{scope}")
    for hit in result.passages:
        print(f"\n{hit.id}  score {hit.score:.2f}  ({hit.language}) {hit.heading}")
        print(f"  {hit.text}")
        if hit.language != "en":
            print(f"  EN: {hit.text_en}")


def cmd_search(args) -> int:
    coach = _coach(args)
    if args.batch:
        return _batch(args.batch, ("question",), lambda row: coach.search(row["question"], k=args.k))
    if args.question is None:
        raise InputError("give a QUESTION or --batch FILE")
    question = _arg_text(args.question, "question")
    result = coach.search(question, k=args.k)
    _emit(result) if args.json else _print_search(result)
    return 0


def cmd_questions(args) -> int:
    coach = _coach(args)
    for q in coach.catalogue.questions.values():
        text = q.text.get(args.lang) or q.text["en"]
        if args.json:
            _emit({"id": q.id, "text": text, "required": q.required, "bonus": q.bonus, "tags": q.tags})
        else:
            print(f"{q.id:28} {text}")
    return 0


def _answer_text(args) -> str:
    if args.answer_file:
        return decode(Path(args.answer_file).read_bytes(), "answer")
    return _read_stdin("answer")


def cmd_grade(args) -> int:
    from .feedback import print_report

    coach = _coach(args)
    if args.batch:
        return _batch(
            args.batch,
            ("answer",),
            lambda row: coach.grade(row["answer"], row.get("question") or args.question),
        )
    if args.audio:
        return _grade_audio(coach, args)
    report = coach.grade(_answer_text(args), args.question)
    _emit(report) if args.json else print_report(report)
    return 0


def _voice(run: Callable[[], int]) -> int:
    """Voice commands: a recogniser that cannot run here is exit 1 with its message."""
    from .speech import SpeechUnavailable

    try:
        return run()
    except SpeechUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_transcribe(args) -> int:
    from .delivery import print_transcript

    def run() -> int:
        transcript = _coach(args).transcribe(Path(args.file).read_bytes(), args.lang)
        _emit(transcript) if args.json else print_transcript(transcript)
        return 0

    return _voice(run)


def _grade_audio(coach, args) -> int:
    """``grade --audio FILE``: the grade report of the transcript, plus ``transcript`` and
    ``delivery`` (reported beside the score, never mixed into it)."""
    from .delivery import print_delivery, print_transcript
    from .feedback import print_report

    def run() -> int:
        report, transcript, delivery = coach.grade_audio(Path(args.audio).read_bytes(), args.question, args.lang)
        if args.json:
            _emit({**report.model_dump(mode="json"), "transcript": transcript.model_dump(mode="json"),
                   "delivery": delivery.model_dump(mode="json")})
        else:
            print_transcript(transcript)
            print()
            print_report(report)
            print()
            print_delivery(delivery)
        return 0

    return _voice(run)


def cmd_ask(args) -> int:
    from .answering import print_answer

    coach = _coach(args)
    if args.batch:
        return _batch(args.batch, ("question",), lambda row: coach.ask(row["question"]))
    if args.question is None:
        raise InputError("give a QUESTION or --batch FILE")
    result = coach.ask(_arg_text(args.question, "question"))
    if args.handout:
        from .handout import handout

        print(handout(result))
        return 0
    _emit(result) if args.json else print_answer(result)
    return 0


def cmd_serve(args) -> int:
    from .api.server import serve

    return serve(host=args.host, port=args.port, workers=args.workers)


def cmd_keys(args) -> int:
    from .api.keys import keys_command

    return keys_command(args)


def cmd_scorm(args) -> int:
    from .scorm import command

    return command(args)


def cmd_xapi(args) -> int:
    from .xapi import command

    return command(args)


def cmd_roleplay(args) -> int:
    from .roleplay import command

    return command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m calmcall", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the vector index (idempotent)")
    p.add_argument("--force", action="store_true", help="rebuild from scratch")
    p.add_argument("--save-cache", action="store_true",
                   help="write the vectors of all knowledge texts to knowledge/vectors/ (shipped)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="retrieve the passages that answer a question")
    p.add_argument("question", nargs="?")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", metavar="FILE", help='JSON lines {"id", "question"} ("-" = stdin)')
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("questions", help="list the practice questions")
    p.add_argument("--lang", default="en")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_questions)

    p = sub.add_parser("grade", help="grade an answer read from stdin")
    p.add_argument("--question", help="practice question id (or free text)")
    p.add_argument("--answer-file", help="read the answer from this file instead of stdin")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", metavar="FILE", help='JSON lines {"id", "question"?, "answer"}')
    p.add_argument("--audio", metavar="FILE", help="grade a spoken answer (WAV, OGG, WebM, FLAC, MP3, M4A)")
    p.add_argument("--lang", default="en", help="language spoken in --audio (default en)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("transcribe", help="speech to text with delivery measures (offline)")
    p.add_argument("file", help="audio file (WAV, OGG, WebM, FLAC, MP3, M4A)")
    p.add_argument("--lang", default="en", help="language spoken (always passed to the model; default en)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("ask", help="grounded answer with citations")
    p.add_argument("question", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", metavar="FILE", help='JSON lines {"id", "question"}')
    p.add_argument("--handout", action="store_true", help="print the answer as a one-page Markdown handout")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="start the HR REST API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="manage organisation API keys")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    k = ksub.add_parser("create")
    k.add_argument("--org", required=True)
    k = ksub.add_parser("revoke")
    k.add_argument("key_id")
    k = ksub.add_parser("list")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("scorm", help="SCORM 1.2 / 2004 packages for an LMS, and their credentials")
    ssub = p.add_subparsers(dest="scorm_command", required=True)
    k = ssub.add_parser("export", help="write a SCORM 1.2 package (zip) for an organisation")
    k.add_argument("--org", required=True)
    which = k.add_mutually_exclusive_group()
    which.add_argument("--question", help="practice question id (default: the learner picks)")
    which.add_argument("--scenario", help="role-play scenario id")
    k.add_argument("--out", required=True, help="the zip to write, e.g. coach.zip")
    k.add_argument("--api-url", help="the HR API's public URL (default CALMCALL_API_URL)")
    k.add_argument("--app-url", help="the app's public URL (default CALMCALL_APP_URL)")
    k.add_argument("--mastery-score", type=int, help="pass mark 0-100 (default CALMCALL_MASTERY_SCORE)")
    k.add_argument("--title", help="title shown in the LMS")
    k.add_argument("--lang", help="launch page and coach language (en, sv, hu, it, nl)")
    k.add_argument("--lms-origin", action="append", default=[],
                   help="only this LMS origin may launch it (repeatable; default any)")
    k.add_argument("--version", choices=["1.2", "2004"], default="1.2",
                   help="SCORM 1.2 (default) or SCORM 2004 4th edition")
    k.add_argument("--json", action="store_true")
    k = ssub.add_parser("credentials", help="list package credentials")
    k.add_argument("--org")
    k.add_argument("--json", action="store_true")
    k = ssub.add_parser("revoke", help="revoke a package credential at once")
    k.add_argument("credential_id")
    p.set_defaults(func=cmd_scorm)

    p = sub.add_parser("xapi", help="xAPI statements for the LRS: outbox, delivery, per-organisation LRS")
    xsub = p.add_subparsers(dest="xapi_command", required=True)
    k = xsub.add_parser("flush", help="send every pending statement now (exit 1 if some are still pending)")
    k.add_argument("--requeue-skipped", action="store_true",
                   help="first queue again what was skipped while no LRS was configured")
    k.add_argument("--limit", type=int, help="send at most this many")
    k.add_argument("--json", action="store_true")
    k = xsub.add_parser("status", help="the outbox: pending, oldest, sent, rejected, skipped")
    k.add_argument("--json", action="store_true")
    k = xsub.add_parser("lrs", help="show or set an organisation's own LRS")
    k.add_argument("--org", required=True)
    k.add_argument("--url", help="its xAPI endpoint, e.g. https://lrs.example.com/xAPI/")
    k.add_argument("--auth", help="user:password (basic auth)")
    k.add_argument("--homepage", help="the namespace of its learner accounts, e.g. https://lms.example.com")
    k.add_argument("--disable", action="store_true", help="send this organisation's statements nowhere")
    k.add_argument("--clear", action="store_true", help="use the server-wide LRS again")
    p.set_defaults(func=cmd_xapi)

    p = sub.add_parser("roleplay", help="a call against a simulated angry caller (interactive, scripted or batch)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--scenario", help="scenario id (see --list)")
    p.add_argument("--lang", default=None, help="language of the call: en, sv, hu, it, nl (default en)")
    p.add_argument("--seed", type=int, default=0, help="line choice seed (same seed and replies, same call)")
    p.add_argument("--script", metavar="FILE", help='one trainee reply per line ("-" = stdin)')
    p.add_argument("--batch", metavar="FILE", help='JSON lines {"id", "scenario", "lang"?, "replies": [...]}')
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_roleplay)
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("bm25s", "chromadb", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # unknown question id and similar lookups
        print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
