"""The one-line messages for a Hub failure (llmhost.pull.errors): each names the model and
what to do, from huggingface_hub's own error types."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import constants, errors

from llmhost.pull.errors import explain, offline

MODEL = "org/model"
PAGE = "https://huggingface.co/org/model"


def answer(status: int) -> httpx2.Response:
    """The Hub's HTTP answer, as huggingface_hub hands it to its errors."""
    return httpx2.Response(
        status, request=httpx2.Request("GET", f"https://huggingface.co/api/models/{MODEL}")
    )


def test_a_gated_model_says_where_to_accept_the_licence() -> None:
    gated = errors.GatedRepoError("403 Client Error", response=answer(403))
    without = explain(MODEL, gated, token=None)
    assert without == f"{MODEL} is gated: accept its licence at {PAGE}, then set HF_TOKEN (in .env)."
    with_token = explain(MODEL, gated, token="hf_x")
    assert "this HF_TOKEN has no access yet" in with_token and PAGE in with_token


def test_a_missing_revision_and_a_missing_repo_point_at_models_toml() -> None:
    revision = errors.RevisionNotFoundError("404 Client Error", response=answer(404))
    assert explain(MODEL, revision, None) == f"{MODEL} has no such revision; check 'revision' in models.toml."
    repo = errors.RepositoryNotFoundError("404 Client Error", response=answer(404))
    assert explain(MODEL, repo, None).endswith(
        "check the 'model' id in models.toml. If it is private, set HF_TOKEN."
    )
    assert explain(MODEL, repo, "hf_x").endswith("check the 'model' id in models.toml.")  # a token is set


def test_other_http_answers_give_their_status_and_first_line() -> None:
    refused = errors.HfHubHTTPError("401 Client Error", response=answer(401))
    assert explain(MODEL, refused, "hf_x") == (
        f"{MODEL}: the Hub refused access (401); check HF_TOKEN and the licence at {PAGE}."
    )
    broken = errors.HfHubHTTPError("500 Server Error\nbody of the page", response=answer(500))
    assert explain(MODEL, broken, None) == f"{MODEL}: the Hub answered 500: 500 Server Error"


def test_a_cache_it_cannot_write_says_whose_pull_to_run() -> None:
    # A PermissionError is an OSError too: it must not read as "unreachable".
    message = explain(MODEL, PermissionError(13, "Permission denied", "/srv/hf/hub"), None)
    assert message.startswith(f"cannot write the download of {MODEL}: [Errno 13] Permission denied")
    assert "Run `llmhost pull` as the user that owns the cache" in message


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ConnectError("name resolution failed"),
        errors.LocalEntryNotFoundError("not cached"),
        OSError("down"),
    ],
)
def test_no_network_names_the_cache_it_looked_in(
    exc: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert not offline()
    assert explain(MODEL, exc, None) == (
        f"cannot download {MODEL}: the Hugging Face Hub is unreachable and it is not in "
        f"the cache ({tmp_path}). Check the network or proxy."
    )


def test_offline_mode_says_how_to_lift_it_for_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert offline()
    message = explain(MODEL, errors.OfflineModeIsEnabled("offline"), None)
    assert message.startswith(f"cannot download {MODEL}: HF_HUB_OFFLINE is set, so the Hub is never asked")
    assert "(~/.cache/huggingface)" in message and "env -u HF_HUB_OFFLINE llmhost pull" in message


def test_anything_else_is_named_by_its_type() -> None:
    assert explain(MODEL, ValueError("odd"), None) == f"{MODEL}: ValueError: odd"
