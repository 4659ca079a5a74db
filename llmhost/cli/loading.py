"""Settings and models.toml as the commands load them, with one-line errors for what is unusable."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from llmhost.config import Catalog, ConfigError, load_catalog
from llmhost.settings import Settings, dotenv_path, origin


def settings_from_env() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(explain_invalid(exc)) from None
    except PermissionError as exc:
        raise _unreadable(Path(exc.filename or ".env"), "640") from None


def load(config: Path | None) -> tuple[Settings, Catalog]:
    """Settings and the catalog with environment overrides applied; ConfigError if unusable."""
    settings, raw = load_raw(config)
    return settings, settings.apply_to(raw)


def load_raw(config: Path | None) -> tuple[Settings, Catalog]:
    """Settings and models.toml as written, before the environment's overrides."""
    settings = settings_from_env()
    path = config if config is not None else settings.llmhost_config
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        raise _unreadable(path, "644") from None
    except OSError:
        pass  # missing and the like: load_catalog says so
    return settings, load_catalog(path)


def _unreadable(path: Path, mode: str) -> ConfigError:
    """The one-line error for a file the service user may not read, with the fix
    (the permission scheme of systemd/README.md: owner you, group llmhost's, mode 640)."""
    import grp
    import pwd

    try:
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    except KeyError:  # an id without a name (some containers)
        user, group = str(os.getuid()), str(os.getgid())
    path = path.absolute()
    return ConfigError(
        f"{path}: permission denied for user {user}, who runs llmhost. "
        f"Fix: sudo chgrp {group} {path} && sudo chmod {mode} {path}"
    )


def explain_invalid(exc: ValidationError) -> str:
    """A bad setting in one line: the variable, its value (never a secret's) and where it
    came from, so the user knows which file, or which environment, to fix."""
    first = exc.errors()[0]
    if not first["loc"]:
        return f"environment: {first['msg']}."
    field = str(first["loc"][0])
    name = field.upper()
    secret = field in ("vllm_api_key", "hf_token")
    shown = name if secret else f"{name}={first.get('input')}"
    env_file = dotenv_path()
    source = f"in {env_file.absolute()}" if origin(field) == ".env" and env_file else "in the environment"
    return f"{shown} ({source}): {first['msg']}."
