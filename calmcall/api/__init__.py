"""The HR REST API (FastAPI): ``create_app``, ``serve``, embed tokens.

For the Streamlit app's embed mode::

    from calmcall.api.tokens import TokenError, verify_token
    org, learner_id = verify_token(coach.store, token)   # raises TokenError
"""

from __future__ import annotations

__all__ = ["TokenError", "create_app", "mint_token", "verify_token"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("TokenError", "mint_token", "verify_token"):
        from . import tokens

        return getattr(tokens, name)
    raise AttributeError(name)
