"""The one-line messages of `llmhost pull` (and `llmhost check --online`) for a Hub failure.

Failures get one line naming the model and what to do: a gated model without HF_TOKEN,
a licence not yet accepted, a typo, a revision that does not exist, no network.
"""

from __future__ import annotations

import os


class PullError(Exception):
    """A route's weights could not be fetched; the message says what to do."""


def _unreachable_errors() -> tuple[type[Exception], ...]:
    from huggingface_hub import errors

    return (
        errors.OfflineModeIsEnabled,
        errors.LocalEntryNotFoundError,
        errors.RevisionResolutionError,  # resolve_revision: no Hub and no ref in the cache
        ConnectionError,
        OSError,
    )


def explain(model: str, exc: Exception, token: str | None) -> str:
    from huggingface_hub import errors

    page = f"https://huggingface.co/{model}"
    if isinstance(exc, errors.GatedRepoError):
        if token is None:
            return f"{model} is gated: accept its licence at {page}, then set HF_TOKEN (in .env)."
        return (
            f"{model} is gated and this HF_TOKEN has no access yet: accept the licence at {page} "
            "with the account the token belongs to (approval can take a while)."
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{model} has no such revision; check 'revision' in models.toml."
    if isinstance(exc, errors.RepositoryNotFoundError):
        hint = "" if token else " If it is private, set HF_TOKEN."
        return f"{model} was not found on the Hugging Face Hub; check the 'model' id in models.toml.{hint}"
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        if status in (401, 403):
            return f"{model}: the Hub refused access ({status}); check HF_TOKEN and the licence at {page}."
        return f"{model}: the Hub answered {status}: {str(exc).splitlines()[0]}"
    if isinstance(exc, PermissionError):
        return (
            f"cannot write the download of {model}: {exc}. Run `llmhost pull` as the user that "
            "owns the cache (the one `llmhost serve` runs as)."
        )
    if isinstance(exc, (*_unreachable_errors(), *_transport_errors())):
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        if offline():
            return (
                f"cannot download {model}: HF_HUB_OFFLINE is set, so the Hub is never asked, and it "
                f"is not in the cache ({cache}). Unset HF_HUB_OFFLINE for the download "
                "(e.g. `env -u HF_HUB_OFFLINE llmhost pull`), then set it again if you want."
            )
        return (
            f"cannot download {model}: the Hugging Face Hub is unreachable and it is not in "
            f"the cache ({cache}). Check the network or proxy."
        )
    return f"{model}: {type(exc).__name__}: {exc}"


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's connection errors (huggingface_hub 2.x talks through httpx2)."""
    try:
        import httpx2

        return (httpx2.TransportError,)
    except ImportError:
        return ()


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it ("1", "true", "yes", "on"; "0" is online)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
