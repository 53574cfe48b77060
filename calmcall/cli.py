"""``python -m calmcall …``: index, search, grade, ask, questions, serve, keys.

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
def cmd_index(args) -> int:
    """Build or update every collection (passages, doc2query questions, catalogue)."""
    import time

    from .coach import Coach
    from .index import VectorIndex, query_docs, vector_docs

    coach = Coach(progress=True)
    settings, knowledge = coach.settings, coach.knowledge
    progress = sys.stderr.isatty()
    start = time.perf_counter()
    reports = []
    for name, docs, side in (
        (settings.collection, vector_docs(knowledge), "passage"),
        (f"{settings.collection}_queries", query_docs(knowledge), "query"),
    ):
        index = VectorIndex(settings, coach.embedder, docs, knowledge.fingerprint, name=name, side=side,
                            cache=coach.vector_cache)
        reports.append((name, index.build(progress=progress, force=args.force)))
    bridge_index = VectorIndex(settings, coach.embedder, coach.bridge.index.docs, coach.catalogue.fingerprint,
                               name=coach.bridge.index.name, side="query", cache=coach.vector_cache)
    reports.append((bridge_index.name, bridge_index.build(progress=progress, force=args.force)))
    _ = coach.retriever, coach.grader  # calibrations are fitted and stored when needed
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
                    cache.put(key, vec)
                    keep.add(key)
        inside, outside = coach.retriever.scope_texts()
        keep |= {cache.key(model, t, True) for t in inside + outside}
        path = coach.vector_cache.save(settings.knowledge_dir / "vectors", keep=keep)
        print(f"vector cache written to {path} ({len(keep)} vectors)")
    return 0


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
    from .grading import print_report

    coach = _coach(args)
    if args.batch:
        return _batch(
            args.batch,
            ("answer",),
            lambda row: coach.grade(row["answer"], row.get("question") or args.question),
        )
    report = coach.grade(_answer_text(args), args.question)
    _emit(report) if args.json else print_report(report)
    return 0


def cmd_ask(args) -> int:
    from .answering import print_answer

    coach = _coach(args)
    if args.batch:
        return _batch(args.batch, ("question",), lambda row: coach.ask(row["question"]))
    if args.question is None:
        raise InputError("give a QUESTION or --batch FILE")
    result = coach.ask(_arg_text(args.question, "question"))
    _emit(result) if args.json else print_answer(result)
    return 0


def cmd_serve(args) -> int:
    from .api.server import serve

    return serve(host=args.host, port=args.port, workers=args.workers)


def cmd_keys(args) -> int:
    from .api.keys import keys_command

    return keys_command(args)


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
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("ask", help="grounded answer with citations")
    p.add_argument("question", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", metavar="FILE", help='JSON lines {"id", "question"}')
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
