"""Optional chat-model backends through langchain, picked by ``CALMCALL_LLM``.

One small registry of factories, each returning a langchain ``BaseChatModel``; imports
happen inside the factories. The default is no LLM at all.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import Settings


class LLMError(RuntimeError):
    pass


def _ollama(settings: Settings):
    from langchain_ollama import ChatOllama

    kwargs = {"model": settings.llm_model or "llama3.1", "temperature": 0}
    if settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    return ChatOllama(**kwargs)


def _openai(settings: Settings):
    from langchain_openai import ChatOpenAI

    if not settings.llm_base_url:
        raise LLMError("CALMCALL_LLM=openai needs CALMCALL_LLM_BASE_URL (an OpenAI-compatible server)")
    return ChatOpenAI(
        model=settings.llm_model or "local",
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        temperature=0,
        timeout=settings.llm_timeout_s,
        max_retries=0,
    )


CHAT_MODELS: dict[str, Callable[[Settings], object]] = {"ollama": _ollama, "openai": _openai}


def load_chat_model(settings: Settings):
    """The configured chat model, or None for the offline answerer."""
    if not settings.llm:
        return None
    try:
        return CHAT_MODELS[settings.llm](settings)
    except KeyError:
        raise LLMError(f"unknown LLM backend {settings.llm!r}; choose one of {sorted(CHAT_MODELS)}") from None
