"""The one object the CLI, the Streamlit app and the API hold: it loads each model and
index lazily, once, and exposes the three things users do (search, grade, ask)."""

from __future__ import annotations

import threading
from functools import cached_property

from .config import Settings, get_settings


class Coach:
    def __init__(self, settings: Settings | None = None, progress: bool = False):
        self.settings = settings or get_settings()
        self.progress = progress
        self._lock = threading.RLock()

    @cached_property
    def knowledge(self):
        from .knowledge import load_knowledge

        return load_knowledge(self.settings.knowledge_dir)

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

        return load_catalogue(self.settings.knowledge_dir, self.knowledge)

    @cached_property
    def bridge(self):
        from .catalogue import StepBridge

        with self._lock:
            return StepBridge(self.settings, self.embedder, self.catalogue, cache=self.vector_cache)

    @cached_property
    def retriever(self):
        from .retrieval import Retriever

        with self._lock:
            return Retriever(
                self.settings,
                self.embedder,
                self.knowledge,
                progress=self.progress,
                bridge=self.bridge,
                cache=self.vector_cache,
            )

    @cached_property
    def grader(self):
        from .grading import Grader

        with self._lock:
            return Grader(self.settings, self.embedder, self.catalogue, self.bridge, self.retriever)

    @cached_property
    def answerer(self):
        from .answering import Answerer

        with self._lock:
            return Answerer(self.settings, self.retriever, self.catalogue, self.bridge)

    @cached_property
    def store(self):
        """The attempts store (SQLite under data_dir unless CALMCALL_DATABASE_URL is set)."""
        from .storage import AttemptStore

        with self._lock:
            return AttemptStore(self.settings.resolved_database_url)

    def warm(self) -> None:
        """Load everything now (server start-up), so the first request is fast."""
        from .language import warm

        warm()
        _ = self.retriever, self.grader, self.answerer

    def search(self, question: str, k: int = 5):
        return self.retriever.search(question, k=k)

    def grade(self, answer: str, question: str | None = None):
        return self.grader.grade(answer, question)

    def ask(self, question: str, history: list[dict] | None = None):
        return self.answerer.ask(question, history=history)
