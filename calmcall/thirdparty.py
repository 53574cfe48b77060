"""Imports of chromadb and bm25s without the start-up work this program never uses.

A search from a fresh process spends most of its time importing (issue #12). Two costs
are not ours to need:

- chromadb decorates ~200 methods with ``overrides.override``, which disassembles the
  caller's frame and compares type signatures with the base class at class-creation
  time: a check of chromadb's own classes against each other (~0.2 s per process). Here
  it only marks the method (``__override__``, what ``EnforceOverrides`` looks for).
- bm25s imports ``scipy.sparse`` when it can (~0.1–0.2 s) for an optional matrix
  backend; our indexes use its numpy backend (``BM25(csc_backend="numpy")``, its
  default), so scipy is hidden from that one import and stays importable afterwards.

Every chromadb and bm25s import in calmcall goes through here; importing either
directly first would only lose the saving, never change behaviour.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def _mark_override(method=None, **_options):
    """``overrides.override`` without its checks: ``@override`` and ``@override(...)``."""
    if method is None:
        return _mark_override
    method.__override__ = True
    return method


def chromadb() -> ModuleType:
    with _lock:
        if "chromadb" not in sys.modules:
            import overrides

            overrides.override = overrides.overrides = _mark_override
        import chromadb as module
    return module


def bm25s() -> ModuleType:
    with _lock:
        if "bm25s" not in sys.modules and "scipy.sparse" not in sys.modules:
            sys.modules["scipy.sparse"] = None  # makes bm25s's ``import scipy.sparse`` fail
            try:
                import bm25s  # noqa: F401 - the import that must not see scipy
            finally:
                del sys.modules["scipy.sparse"]
        import bm25s as module
    return module
