"""Where `llmhost pull` writes: the cache `llmhost serve` reads, or nowhere.

`serve` takes HF_HOME from the environment, else from settings (`.env`, default
/srv/llm/.cache), and huggingface_hub puts the weights in HF_HUB_CACHE, else
HF_HOME/hub. Under systemd that directory belongs to the service user. `pull` run as
anyone else must not fall back to ~/.cache (the service would then download everything
again on its first request), and run as root it would leave files the service user
cannot update: both stop before anything downloads, naming the user to run it as.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from llmhost.settings import Settings


@dataclass(frozen=True)
class Cache:
    """The cache `serve` reads: HF_HOME, and the hub folder below it the weights go to."""

    home: Path
    hub: Path
    from_environment: tuple[str, ...]  # HF_HOME / HF_HUB_CACHE when the environment set them


def resolve(settings: Settings) -> Cache:
    """The cache as `serve` resolves it (Settings.export_cache_dir), without its fallback."""
    env = os.environ
    home = Path(env["HF_HOME"]) if env.get("HF_HOME") else settings.hf_home
    hub = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else home / "hub"
    from_env = tuple(name for name in ("HF_HOME", "HF_HUB_CACHE") if env.get(name))
    return Cache(home.expanduser(), hub.expanduser(), from_env)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # an id without a name (some containers)
        return f"#{uid}"  # as sudo -u takes it


def problem(cache: Cache, uid: int | None = None) -> tuple[str, str | None] | None:
    """Why `uid` (default: this process's user) may not download into `cache`, and the
    user to run as instead (None when no user can be named); None when it may."""
    uid = os.geteuid() if uid is None else uid
    me = user_name(uid)
    existing = cache.hub
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{cache.hub} cannot be created: {existing} is not a directory", None
    owner_uid = existing.stat().st_uid
    owner = user_name(owner_uid)
    if uid == 0 and owner_uid != 0:
        # Root may write anywhere, but the folders, blobs, refs and locks it would leave
        # there would be root's: the service user could read them, not update them.
        return (
            f"{existing} belongs to {owner}; files downloaded as root there could not be updated by {owner}",
            owner,
        )
    if existing == cache.hub and not _writable(existing, uid):
        return f"{cache.hub} is not writable by user {me}; it belongs to {owner}", owner
    if existing != cache.hub and not _writable(existing, uid):
        return (
            f"{cache.hub} does not exist and user {me} cannot create it "
            f"({existing} belongs to {owner}); create it for the user `llmhost serve` runs as "
            "(systemd/README.md)",
            owner if owner_uid != 0 else None,
        )
    return None


def _writable(path: Path, uid: int) -> bool:
    """Whether `uid` may create files in `path` (os.access answers for this process only)."""
    if uid == os.geteuid():
        return os.access(path, os.W_OK | os.X_OK)
    if uid == 0:
        return True
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o300 == 0o300)
    try:
        groups = os.getgrouplist(pwd.getpwuid(uid).pw_name, pwd.getpwuid(uid).pw_gid)
    except KeyError:
        groups = []
    if info.st_gid in groups:
        return bool(info.st_mode & 0o030 == 0o030)
    return bool(info.st_mode & 0o003 == 0o003)
