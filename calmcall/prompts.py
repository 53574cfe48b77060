"""Prompt and feedback templates are data files in ``prompts/``, loaded by name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .config import get_settings


@lru_cache(maxsize=32)
def _load(path: Path) -> dict:
    # libyaml's safe loader and the parsed cache (knowledge.load_yaml), not the pure-Python
    # ``yaml.safe_load``: the feedback templates took ~0.15 s of every `grade` start
    from .knowledge import load_yaml

    return load_yaml(path.read_bytes())


def load_prompt(name: str, prompts_dir: Path | None = None) -> dict:
    """``prompts/<name>.yaml`` as a dict (cached)."""
    base = Path(prompts_dir or get_settings().prompts_dir)
    path = base / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"prompt template {name!r} not found at {path}")
    return _load(path)


def localized(templates: dict, key: str, lang: str) -> str:
    """``templates[key][lang]``, falling back to English."""
    entry = templates[key]
    return entry.get(lang) or entry["en"]
