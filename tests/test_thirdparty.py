"""calmcall/thirdparty.py: chromadb and bm25s imported without their unused start-up
work, and still working as the libraries do. Each check runs in a new interpreter: the
saving only exists for the first import in a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(code: str, tmp_path: Path) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       cwd=REPO, timeout=180, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_bm25s_comes_without_scipy_and_scipy_stays_importable(tmp_path):
    out = _run("""
        import sys
        from calmcall import thirdparty
        bm25s = thirdparty.bm25s()
        print("scipy.sparse" in sys.modules, bm25s.SCIPY_AVAILABLE)
        r = bm25s.BM25()
        docs = ["let the caller finish", "offer a refund or a credit", "end the call politely"]
        r.index(bm25s.tokenize(docs, show_progress=False), show_progress=False)
        ids, _ = r.retrieve(bm25s.tokenize(["refund"], show_progress=False), k=1, show_progress=False)
        print(int(ids[0][0]))
        import scipy.sparse
        print(scipy.sparse.csr_matrix([[1]]).nnz)
    """, tmp_path)
    assert out.splitlines() == ["False False", "1", "1"]


def test_chromadb_methods_are_marked_not_checked_and_the_store_works(tmp_path):
    out = _run(f"""
        from calmcall import thirdparty
        chromadb = thirdparty.chromadb()
        import overrides
        from chromadb.api.rust import RustBindingsAPI
        print(overrides.override is thirdparty._mark_override, RustBindingsAPI.count_collections.__override__)
        client = chromadb.PersistentClient(path={str(tmp_path / "chroma")!r},
                                           settings=chromadb.Settings(anonymized_telemetry=False))
        c = client.create_collection("probe", embedding_function=None, metadata={{"hnsw:space": "cosine"}})
        c.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
        print(c.count(), c.query(query_embeddings=[[0.9, 0.1]], n_results=1)["ids"][0][0])
    """, tmp_path)
    assert out.splitlines() == ["True True", "2 a"]


def test_a_library_imported_first_elsewhere_is_returned_as_is(tmp_path):
    out = _run("""
        import chromadb, bm25s
        from calmcall import thirdparty
        print(thirdparty.chromadb() is chromadb, thirdparty.bm25s() is bm25s, bm25s.SCIPY_AVAILABLE)
    """, tmp_path)
    assert out == "True True True"
