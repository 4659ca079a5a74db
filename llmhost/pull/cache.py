"""Whether `llmhost pull` may write the cache `llmhost serve` reads, and as whom to run it.

Which cache that is, Settings.weights_cache decides, for `serve`, `pull` and `check`
alike. Under systemd it belongs to the service user. `pull` run as anyone else must not
fall back to ~/.cache as `serve` does (the service would then download everything again
on its first request), and run as root it would leave files the service user cannot
update: both stop before anything downloads, naming the user to run it as.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from llmhost.settings import WeightsCache


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # an id without a name (some containers)
        return f"#{uid}"  # as sudo -u takes it


def problem(cache: WeightsCache, uid: int | None = None) -> tuple[str, str | None] | None:
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
    # The owner is the user to run as, unless that is this user already (a folder of one's
    # own made read-only: sudo would not help).
    run_as = owner if owner_uid != uid else None
    if existing == cache.hub and not _writable(existing, uid):
        return f"{cache.hub} is not writable by user {me}; it belongs to {owner}", run_as
    if existing != cache.hub and not _writable(existing, uid):
        return (
            f"{cache.hub} does not exist and user {me} cannot create it "
            f"({existing} belongs to {owner}); create it for the user `llmhost serve` runs as "
            "(systemd/README.md)",
            None if owner_uid == 0 else run_as,  # root's parent (/srv): the admin creates it
        )
    return None


def sudo(cache: WeightsCache, user: str) -> list[str]:
    """The start of a command run as `user` that sees this cache: sudo starts with a clean
    environment, so the variables that placed the cache are passed along."""
    command = ["sudo", "-u", user]
    if cache.from_environment:
        command += ["env", *(f"{name}={os.environ[name]}" for name in cache.from_environment)]
    return command


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
