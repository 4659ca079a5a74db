"""`llmhost pull`: put the weights of configured routes into the Hugging Face cache ahead of use.

A first request should not wait for a 15 GB download. Failures get one line naming the
model and what to do: a gated model without HF_TOKEN, a licence not yet accepted, a
typo, no network.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from llmhost.config import Catalog, RouteConfig

# The original/ folders of Meta's repos hold a second, consolidated copy of the weights
# (16 GB for Llama 3.1 8B) that vLLM never reads.
LLM_IGNORE = ["original/*", "*.pth"]


class PullError(Exception):
    """A route's weights could not be fetched; the message says what to do."""


def select(catalog: Catalog, names: Iterable[str]) -> list[RouteConfig]:
    names = list(names)
    unknown = [n for n in names if n not in catalog.routes]
    if unknown:
        raise PullError(f"no route named {', '.join(unknown)}; routes: {', '.join(catalog.routes)}")
    return [catalog.routes[n] for n in names] if names else list(catalog.routes.values())


def pull_route(route: RouteConfig, token: str | None) -> str:
    """Download one route's weights (with a progress bar); return where they are."""
    if Path(route.model).expanduser().exists():
        return f"{route.name}: {route.model} is a local path, nothing to download"
    from huggingface_hub import snapshot_download

    revision = route.pipeline.revision if route.kind == "diffusion" else route.engine.get("revision")
    try:
        path = snapshot_download(
            route.model,
            revision=revision,
            token=token,
            ignore_patterns=LLM_IGNORE if route.kind == "llm" else ["*.ckpt"],
        )
    except Exception as exc:
        raise PullError(f"{route.name}: {explain(route.model, exc, token)}") from None
    return f"{route.name}: {route.model} ready in {path}"


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
        return f"cannot write the download of {model}: {exc}. Make HF_HOME writable or point it elsewhere."
    if isinstance(
        exc, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError, ConnectionError, OSError)
    ):
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        if _offline():
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


def _offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it ("1", "true", "yes", "on"; "0" is online)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
