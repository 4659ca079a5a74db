"""`llmhost pull`'s cache check (llmhost.pull.cache): whether this user can write the
weights cache, whose it is if not, and the command that runs the pull as its owner."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from llmhost.pull.cache import problem, sudo
from llmhost.settings import Settings, WeightsCache


def cache_at(hub: Path) -> WeightsCache:
    return WeightsCache(hub.parent, hub, ())


def test_a_writable_cache_or_one_that_can_be_created_passes(tmp_path: Path) -> None:
    assert problem(cache_at(tmp_path / "hub")) is None
    assert problem(cache_at(tmp_path / "new" / "hf" / "hub")) is None


def test_a_path_through_a_regular_file_cannot_be_created(tmp_path: Path) -> None:
    # Refused for root too: no permission bit is involved, the path cannot exist.
    (tmp_path / "file").write_text("")
    reason, user = problem(cache_at(tmp_path / "file" / "hub")) or ("", "")
    assert f"{tmp_path / 'file'} is not a directory" in reason and user is None


def test_another_users_cache_names_its_owner(tmp_path: Path) -> None:
    # Checked for a user other than this process's (the uid argument), so it holds when the
    # tests run as root, whom no mode bit stops: a cache of root's, mode 755, seen by "nobody".
    nobody = pwd.getpwnam("nobody").pw_uid
    cache = tmp_path / "hub"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    owner = pwd.getpwuid(cache.stat().st_uid).pw_name
    reason, user = problem(cache_at(cache), uid=nobody) or ("", "")
    assert reason == f"{cache} is not writable by user nobody; it belongs to {owner}"
    assert user == owner


def test_a_read_only_folder_of_ones_own_names_no_user_to_run_as(tmp_path: Path) -> None:
    # sudo -u oneself would not help. Root writes anywhere, so as root the folder is
    # nobody's, and it is asked for nobody.
    cache = tmp_path / "hub"
    cache.mkdir()
    cache.chmod(0o555)
    uid = os.geteuid()
    if uid == 0:
        uid = pwd.getpwnam("nobody").pw_uid
        os.chown(cache, uid, -1)
    reason, user = problem(cache_at(cache), uid=uid) or ("", "")
    assert reason.startswith(f"{cache} is not writable by user ") and user is None


@pytest.mark.parametrize("names", [(), ("HF_HOME",), ("HF_HOME", "HF_HUB_CACHE")])
def test_the_command_as_the_owner_carries_the_variables_that_place_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> None:
    for name in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name in names:
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    cache = Settings(_env_file=None, hf_home=tmp_path / "default").weights_cache()
    passed = [f"{name}={tmp_path / name.lower()}" for name in names]
    assert sudo(cache, "llmhost") == ["sudo", "-u", "llmhost", *(["env", *passed] if names else [])]


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into another user's cache")
def test_root_does_not_write_into_the_service_users_cache(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    cache.mkdir()
    os.chown(cache, pwd.getpwnam("nobody").pw_uid, -1)
    reason, user = problem(cache_at(cache)) or ("", "")
    assert "belongs to nobody" in reason and "could not be updated by nobody" in reason
    assert user == "nobody"


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into another user's cache")
def test_root_does_not_create_the_hub_folder_in_the_service_users_home(tmp_path: Path) -> None:
    home = tmp_path / "cache"  # HF_HOME exists (the service user's), its hub/ not yet
    home.mkdir()
    os.chown(home, pwd.getpwnam("nobody").pw_uid, -1)
    reason, user = problem(cache_at(home / "hub")) or ("", "")
    assert reason.startswith(f"{home} belongs to nobody") and user == "nobody"
