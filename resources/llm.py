"""An OpenAI-compatible chat model as a Dagster resource, or nothing (the offline extractive summary).

Configured by ``KILN_LLM_BASE_URL`` / ``KILN_LLM_MODEL`` / ``KILN_LLM_API_KEY`` (or the resource fields);
``KILN_LLM_MAX_INPUT_CHARS`` caps the transcript sent (``input_budget``). Uses the
official ``openai`` client, whose built-in retries cover connection errors, 408/409/429 and 5xx with exponential
backoff (honouring ``Retry-After``); ``max_retries`` sets how many. The API key is never logged or shown in the UI:
leave the field unset and it is read from the environment at run time.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines.errors import PermanentError, RetryableError
from resources.settings import get_settings


class LLMUnavailable(RetryableError):
    code = "llm_unavailable"
    title = "The language model endpoint did not answer"


class LLMRejected(PermanentError):
    code = "llm_rejected"
    title = "The language model endpoint refused the request"


class LLM(dg.ConfigurableResource):
    """Chat completions from any OpenAI-compatible endpoint. ``chat_model()`` is None when not configured."""

    base_url: str | None = None  # e.g. http://vllm:8000/v1 ; None: KILN_LLM_BASE_URL
    model: str | None = None  # None: KILN_LLM_MODEL
    api_key: str | None = None  # None: KILN_LLM_API_KEY (kept out of Dagster's config on purpose)
    timeout_seconds: float | None = None
    max_retries: int | None = None
    temperature: float = 0.2
    max_input_chars: int | None = None  # None: KILN_LLM_MAX_INPUT_CHARS

    def _resolved(self) -> dict[str, Any]:
        settings = get_settings()
        key = self.api_key or (settings.llm_api_key.get_secret_value() if settings.llm_api_key else None)
        return {
            "base_url": self.base_url or settings.llm_base_url,
            "model": self.model or settings.llm_model,
            "api_key": key or "not-needed",  # local servers (vLLM, llama.cpp, Ollama) ignore it
            "timeout": self.timeout_seconds or settings.llm_timeout_seconds,
            "max_retries": self.max_retries if self.max_retries is not None else settings.llm_max_retries,
        }

    def input_budget(self) -> int:
        """Transcript characters the summary may send (a longer transcript is sampled evenly to fit)."""
        return self.max_input_chars or get_settings().llm_max_input_chars

    def is_configured(self) -> bool:
        cfg = self._resolved()
        return bool(cfg["base_url"] and cfg["model"])

    def chat_model(self) -> OpenAIChat | None:
        if not self.is_configured():
            return None
        cfg = self._resolved()
        return OpenAIChat(
            base_url=cfg["base_url"], model=cfg["model"], api_key=cfg["api_key"], timeout=cfg["timeout"],
            max_retries=cfg["max_retries"], temperature=self.temperature,
        )


class OpenAIChat:
    """The plain object handed to ``pipelines.video_notes.summary`` (satisfies its ``ChatModel`` protocol)."""

    def __init__(
        self, *, base_url: str, model: str, api_key: str, timeout: float = 60.0, max_retries: int = 4,
        temperature: float = 0.2,
    ) -> None:
        import openai

        self.model_name = model
        self.temperature = temperature
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model_name!r}, base_url={str(self._client.base_url)!r})"

    def complete(self, messages: list[dict[str, str]]) -> str:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model_name, messages=messages, temperature=self.temperature  # type: ignore[arg-type]
            )
        except (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                openai.InternalServerError) as exc:
            raise LLMUnavailable(f"LLM endpoint unavailable after retries: {type(exc).__name__}") from exc
        except openai.APIStatusError as exc:
            # The endpoint's own words (e.g. "maximum context length is 8192 tokens") say what to change; they
            # end up in the summary's notes, so bounded, and never for 401/403 (some servers echo part of the key).
            detail = "" if exc.status_code in (401, 403) else str(getattr(exc, "message", "") or "")[:200]
            raise LLMRejected(f"LLM endpoint answered HTTP {exc.status_code}" + (f": {detail}" if detail else "")) from exc
        content = response.choices[0].message.content if response.choices else None
        if not content:
            raise LLMUnavailable("LLM endpoint returned an empty answer")
        return content
