"""The Streamlit app's HTTP layer: the response headers Streamlit cannot set itself.

Streamlit has no option for custom response headers, so ``app.py`` declares an ``st.App``
(Streamlit's ASGI app, which ``streamlit run app.py`` detects and serves) with this
middleware. Every HTTP response then carries

* ``Content-Security-Policy: frame-ancestors 'self' <CALMCALL_FRAME_ANCESTORS>``: only the
  app itself and the configured portal origins may frame it (unset: no other origin);
* ``X-Content-Type-Options: nosniff``.

The same ``SecurityHeadersMiddleware`` serves the HR API, so app and API agree on who may
frame the coach.
"""

from __future__ import annotations

from .config import Settings, get_settings


def middleware(settings: Settings | None = None) -> list:
    """Starlette middleware for ``st.App(..., middleware=...)``."""
    from starlette.middleware import Middleware

    from .api.limits import SecurityHeadersMiddleware

    settings = settings or get_settings()
    return [Middleware(SecurityHeadersMiddleware, frame_ancestors=settings.frame_ancestors)]
