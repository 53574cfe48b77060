"""The one object the CLI, the Streamlit app and the API hold: it loads each model and
index lazily, once, and exposes the three things users do (search, grade, ask)."""

from __future__ import annotations

import threading
from functools import cached_property

from .config import Settings, get_settings


class Coach:
    """Each part is built once, on first use, by whichever thread asks first (the others
    wait for it). A part's dependencies are fetched before ``_lock`` is taken, so two
    threads building different parts cannot wait on each other."""

    def __init__(self, settings: Settings | None = None, progress: bool = False):
        self.settings = settings or get_settings()
        self.progress = progress
        self._lock = threading.RLock()
        from .knowledge import YAML_CACHE

        YAML_CACHE.configure(self.settings.data_dir / "cache")  # parsed knowledge YAML

    @cached_property
    def knowledge(self):
        from .knowledge import YAML_CACHE, load_knowledge

        knowledge = load_knowledge(self.settings.knowledge_dir)
        YAML_CACHE.flush()
        return knowledge

    @cached_property
    def embedder(self):
        from .embeddings import load_embedder

        with self._lock:
            return load_embedder(self.settings)

    @cached_property
    def vector_cache(self):
        """Vectors of knowledge texts already embedded by this model (shipped + local)."""
        from .embeddings import VectorCache

        return VectorCache(
            [self.settings.knowledge_dir / "vectors", self.settings.data_dir / "vectors"],
            self.settings.data_dir / "vectors",
            self.embedder.manifest_id,
        )

    @cached_property
    def catalogue(self):
        from .catalogue import load_catalogue
        from .knowledge import YAML_CACHE

        catalogue = load_catalogue(self.settings.knowledge_dir, self.knowledge)
        YAML_CACHE.flush()
        return catalogue

    @cached_property
    def question_vectors(self):
        """(matrix, qids): the query-side vector of every practice question text, all
        languages, one row each, and the question id of each row. Read from the vector cache
        (the shipped one holds them: they are scope texts), so a start embeds nothing."""
        import numpy as np

        qids, texts = [], []
        for q in self.catalogue.questions.values():
            for text in q.text.values():
                qids.append(q.id)
                texts.append(text)
        embedder, cache = self.embedder, self.vector_cache
        with self._lock:
            matrix = embedder.embed_cached(texts, True, cache)
            cache.save()  # only writes when something had to be embedded
        matrix.setflags(write=False)
        return matrix, np.array(qids)

    @cached_property
    def bridge(self):
        from .catalogue import StepBridge

        embedder, catalogue, cache = self.embedder, self.catalogue, self.vector_cache
        with self._lock:
            bridge = StepBridge(self.settings, embedder, catalogue, cache=cache)
            seed_shipped_probes(self.settings)
            return bridge

    @cached_property
    def retriever(self):
        from .retrieval import Retriever

        embedder, knowledge, bridge, cache = self.embedder, self.knowledge, self.bridge, self.vector_cache
        with self._lock:
            return Retriever(self.settings, embedder, knowledge, progress=self.progress, bridge=bridge, cache=cache)

    @cached_property
    def grader(self):
        from .grading import Grader

        deps = self.embedder, self.catalogue, self.bridge, self.retriever
        question_vectors = self.question_vectors
        with self._lock:
            grader = Grader(self.settings, *deps, question_vectors=question_vectors)
        from .knowledge import YAML_CACHE

        YAML_CACHE.flush()  # the feedback templates, parsed once
        return grader

    @cached_property
    def answerer(self):
        from .answering import Answerer

        deps = self.retriever, self.catalogue, self.bridge
        with self._lock:
            return Answerer(self.settings, *deps)

    @cached_property
    def store(self):
        """The attempts store (SQLite under data_dir unless CALMCALL_DATABASE_URL is set)."""
        from .storage import AttemptStore

        with self._lock:
            return AttemptStore(self.settings.resolved_database_url)

    def index_staleness(self) -> str:
        """Why the index must be built or updated before this Coach can serve ('' when it
        is current): read from the collections' snapshots, so it is cheap to ask."""
        from .catalogue import phrasing_docs
        from .index import ChromaStore, VectorIndex, query_docs, vector_docs

        s, k = self.settings, self.knowledge
        store = ChromaStore(s)
        for name, docs, fingerprint in (  # the documents are built only if a snapshot is missing
            (s.collection, lambda: vector_docs(k), k.fingerprint),
            (f"{s.collection}_queries", lambda: query_docs(k), k.fingerprint),
            (f"{s.collection}_catalogue", lambda: phrasing_docs(self.catalogue), self.catalogue.fingerprint),
        ):
            reason = VectorIndex(s, self.embedder, docs, fingerprint, name=name, client=store).staleness()
            if reason:
                return f"{name}: {reason}"
        return ""

    def load_probes(self) -> None:
        """Every probe the catalogue bridge defines (its cached ``…probe`` properties),
        fitted once per catalogue and embedder and kept in the data dir, read back here: so
        that no request (and no `grade` after `index`) fits one."""
        bridge = self.bridge
        for name, attr in vars(type(bridge)).items():
            if isinstance(attr, cached_property) and name.endswith("probe"):
                getattr(bridge, name)

    def warm(self, pause=None) -> None:
        """Load everything now (server start-up), so the first request is fast.

        ``pause``: called before each step (the app's warm-up lets a page being drawn go
        first: see ``PageRuns``). Nothing is held while it waits, so a request that needs a
        part meanwhile simply builds it itself."""
        from .language import warm

        def steps():
            yield from (lambda: self.embedder, lambda: self.catalogue, lambda: self.bridge,
                        lambda: self.retriever, lambda: self.question_vectors, lambda: self.grader,
                        lambda: self.answerer)
            yield from self.retriever.warm_steps()  # bm25, scope references, Chroma opened
            yield self.load_probes
            # last: building lingua's models holds the interpreter for ~1.5 s (the Rust build
            # does not release the GIL), and a page being drawn meanwhile would stand still
            yield warm

        import logging
        import time

        log = logging.getLogger(__name__)
        for n, step in enumerate(steps()):
            if pause is not None:
                t0 = time.perf_counter()
                pause()
                waited = time.perf_counter() - t0
                if waited > 0.01:
                    log.info("warm-up step %d waited %.2f s for a page run", n, waited)
            t0 = time.perf_counter()
            step()
            log.info("warm-up step %d took %.2f s", n, time.perf_counter() - t0)

    def search(self, question: str, k: int = 5):
        return self.retriever.search(question, k=k)

    def grade(self, answer: str, question: str | None = None, feedback_lang: str | None = None):
        """``feedback_lang``: the language to write feedback in (default: the answer's)."""
        return self.grader.grade(answer, question, feedback_lang)

    def ask(self, question: str, history: list[dict] | None = None):
        return self.answerer.ask(question, history=history)

    # -- voice (calmcall/speech.py, calmcall/delivery.py) --------------------------------
    @cached_property
    def speech(self):
        """The speech recogniser; its models load on first use, once per process."""
        from .speech import load_speech

        return load_speech(self.settings)

    def transcribe(self, audio: bytes, lang: str | None = None):
        """Audio file bytes -> ``calmcall.delivery.Transcript`` (the ``transcribe`` JSON).
        Bad audio raises ``calmcall.speech.AudioError``."""
        from .delivery import measure

        return measure(self.speech.transcribe(audio, lang), self.settings.knowledge_dir)

    def delivery(self, transcript, feedback_lang: str | None = None):
        """Delivery remarks on a transcript, in ``feedback_lang`` (default its language)."""
        from .delivery import assess

        return assess(transcript, feedback_lang or transcript.language, self.knowledge, self.settings.knowledge_dir)

    def grade_audio(self, audio: bytes, question: str | None = None, lang: str | None = None,
                    feedback_lang: str | None = None):
        """Spoken answer -> (grade report of its transcript, transcript, delivery). Delivery
        is reported beside the grade, never mixed into the score."""
        transcript = self.transcribe(audio, lang)
        report = self.grade(transcript.text, question, feedback_lang)
        return report, transcript, self.delivery(transcript, feedback_lang or report.language)


PROBE_GLOB = "probe-*.npz"


def seed_shipped_probes(settings: Settings) -> int:
    """Copy the step probes shipped in ``knowledge/vectors/`` into the data dir, where the
    bridge looks for the probe of its exact vectors, labels, recipe and scikit-learn version
    (the file name is a hash of all that, so a shipped probe that does not fit is simply
    never read). A fresh checkout then reads the probe instead of fitting it (~4 s with the
    scikit-learn import). Returns how many files were copied."""
    import shutil

    src, dst = settings.knowledge_dir / "vectors", settings.data_dir / "probe"
    copied = 0
    for f in sorted(src.glob(PROBE_GLOB)) if src.is_dir() else []:
        target = dst / f.name
        if target.exists():
            continue
        try:
            dst.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".seed.tmp")
            shutil.copyfile(f, tmp)
            tmp.replace(target)
            copied += 1
        except OSError:  # a read-only data dir: the probe is fitted in memory instead
            break
    return copied


class PageRuns:
    """What the app is doing for a visitor right now: page script runs and HTTP requests
    (the page's own assets) in progress. The warm-up runs beside them in the same
    interpreter, and with two threads that both want the GIL a page takes about twice as
    long to arrive and draw (and stands still while lingua's models are built): so each
    warm-up step first waits until nothing is in progress and has not been for ``quiet``
    s (at most ``max_wait`` s, so that a busy server still warms up). A page that needs a
    model meanwhile loads it itself."""

    def __init__(self, max_wait: float = 5.0, quiet: float = 0.5) -> None:
        self.max_wait, self.quiet = max_wait, quiet
        self._active = 0
        self._last = 0.0  # monotonic time the last run or request ended
        self._cond = threading.Condition()

    @property
    def active(self) -> int:
        return self._active

    def drawing(self):
        """``with PAGE_RUNS.drawing(): …`` around one page script run."""
        from contextlib import contextmanager

        @contextmanager
        def run():
            with self._cond:
                self._active += 1
            try:
                yield
            finally:
                import time

                with self._cond:
                    self._active -= 1
                    self._last = time.monotonic()
                    self._cond.notify_all()

        return run()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing has been in progress for ``quiet`` s (True) or ``timeout``
        (default ``max_wait``) passed (False)."""
        import time

        deadline = time.monotonic() + (self.max_wait if timeout is None else timeout)
        with self._cond:
            while True:
                now = time.monotonic()
                calm = self.quiet - (now - self._last)
                if self._active == 0 and calm <= 0:
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(deadline - now, calm if self._active == 0 else deadline - now))


PAGE_RUNS = PageRuns()


class WarmUp:
    """A Coach loading in a background thread from server start-up, so that the first
    visitor does not pay for it. ``phase`` says truthfully what it is doing: "loading"
    (models and an existing index), "building" (the index is missing or stale and is being
    built), "ready" or "failed".

    Pages can draw as soon as the Coach is *usable* (knowledge and catalogue read, the
    ``first`` steps done: well under a second); the models, the index and the ``extra``
    steps keep loading behind it, and a call that needs them before they are there waits
    for them (or builds them itself). ``pause`` is called before each loading step once
    pages can draw (``PageRuns.wait_idle``: a page being served goes first). When the index
    must be built, nothing is usable until it is."""

    def __init__(self, settings: Settings, extra=(), first=(), settle=None, pause=None, then=()):
        import time

        self.settings = settings
        self.extra, self.first, self.settle, self.pause = tuple(extra), tuple(first), settle, pause
        self.then = tuple(then)
        self.phase = "starting"
        self.detail = ""
        self.coach: Coach | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.seconds: float | None = None
        self._done = threading.Event()
        self._known = threading.Event()  # the phase says what the load involves
        self._usable = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calmcall-warm-up", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import logging
        import time

        try:
            coach = Coach(self.settings)
            self.detail = coach.index_staleness()
            self.phase = "building" if self.detail else "loading"
            self._known.set()
            _ = coach.knowledge, coach.catalogue  # what every page draws from
            for fn in self.first:
                fn(coach)
            self.coach = coach
            if self.phase == "loading":
                self._usable.set()
            if self.settle is not None:
                self.settle()  # e.g. let the web server finish starting first
            # Pages waiting for an index being built wait for all of it: nothing to yield to
            pause = self.pause if self.phase == "loading" else None
            for fn in self.then:
                if pause is not None:
                    pause()
                fn(coach)
            coach.warm(pause=pause)
            for fn in self.extra:
                if pause is not None:
                    pause()
                fn(coach)
            self.phase = "ready"
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits
            logging.getLogger(__name__).exception("warm-up failed")
            self.error, self.phase = exc, "failed"
        finally:
            self.seconds = time.monotonic() - self.started
            self._known.set()
            self._usable.set()
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def usable(self) -> bool:
        return self._usable.is_set()

    def wait_phase(self, timeout: float | None = None) -> str:
        """The phase once it is known whether the index must be built (within ``timeout``)."""
        self._known.wait(timeout)
        return self.phase

    def wait_usable(self, timeout: float | None = None) -> Coach:
        """The Coach once pages can draw from it (raises what the warm-up raised first)."""
        if not self._usable.wait(timeout):
            raise TimeoutError("the coach is still loading")
        if self.error is not None:
            raise self.error
        assert self.coach is not None
        return self.coach

    def wait(self, timeout: float | None = None) -> Coach:
        """The fully warmed Coach (raises what the warm-up raised)."""
        if not self._done.wait(timeout):
            raise TimeoutError("the coach is still loading")
        if self.error is not None:
            raise self.error
        assert self.coach is not None
        return self.coach


_WARM_UPS: dict[str, WarmUp] = {}
_WARM_LOCK = threading.Lock()


def start_warm_up(settings: Settings | None = None, extra=(), first=(), settle=None, pause=None,
                  then=()) -> WarmUp:
    """The process's warm-up for these settings, started now if it is not running (or
    failed before: then it is tried again). ``first``: steps (called with the Coach) that
    pages need before they can draw, e.g. opening the attempts store; ``extra``: more
    warm-up steps once everything is loaded (the app grades a few samples so that their
    one-off costs are paid at start-up); ``settle``: called once before the models load (the
    app waits for its server to answer, so that loading does not hold up the server's own
    start); ``then``: steps (called with the Coach) once settled, before the models load
    (the app opens the attempts store there: a page draws without it, and one that needs it
    first opens it itself); ``pause``: called before each loading step (the app waits while
    a page is being drawn, ``PAGE_RUNS.wait_idle``). Safe to call from every script run and
    thread."""
    settings = settings or get_settings()
    key = settings.model_dump_json()
    with _WARM_LOCK:
        warm = _WARM_UPS.get(key)
        if warm is None or (warm.done and warm.error is not None):
            warm = _WARM_UPS[key] = WarmUp(settings, extra, first, settle, pause, then)
        return warm
