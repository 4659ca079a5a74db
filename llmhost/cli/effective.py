"""The settings table `llmhost check` prints: every host setting, the value in force and
where it came from (environment, .env, models.toml, --config or the built-in default)."""

from __future__ import annotations

from pathlib import Path

from llmhost.config import Catalog
from llmhost.settings import Settings
from llmhost.units import GIB


def effective(settings: Settings, raw: Catalog, config: Path | None = None) -> list[tuple[str, str, str]]:
    """Every host setting as (name, value, where it came from) for `llmhost check`.

    `raw` is models.toml before the environment's overrides; `config` the --config path.
    """
    rows: list[tuple[str, str, str]] = []

    def own(field: str, value: object) -> None:
        rows.append((field.upper(), str(value), settings.origin(field)))

    if config is not None:
        rows.append(("LLMHOST_CONFIG", str(config), "--config"))
    else:
        own("llmhost_config", settings.llmhost_config)
    own("llmhost_host", settings.llmhost_host)
    own("llmhost_port", settings.llmhost_port)
    own("llmhost_log_level", settings.llmhost_log_level)
    for secret in ("vllm_api_key", "hf_token"):
        own(secret, "set" if getattr(settings, secret) is not None else "not set")
    own("hf_home", settings.hf_home)
    own("searxng_url", settings.searxng_url)
    overrides = {
        "idle_seconds": "idle_seconds",
        "start_timeout_seconds": "start_timeout_seconds",
        "prewarm": "prewarm_routes",
    }
    applied = settings.apply_to(raw)
    effective = applied.host
    for key in type(effective).model_fields:
        text = _show(getattr(effective, key))
        if key == "standby_ram_gib" and effective.standby_ram_gib is None:
            text = f"auto: {effective.standby_ram_bytes / GIB:.1f} GiB (40% of RAM)"
        if key == "max_wait_seconds" and effective.max_wait_seconds is None:
            from llmhost.lifecycle.bounds import request_wait_bound  # here: every command loads this module

            text = f"auto: {request_wait_bound(applied):g} s (the worst swap these settings allow)"
        if key == "engine_margin_gib" and effective.engine_margin_gib is None:
            text = "auto: measured, else 1 GiB"  # llmhost.gpu.margin; the line below the table
        field = overrides.get(key)
        if field is not None and getattr(settings, field) is not None:
            where = f"{settings.origin(field)} ({field.upper()})"
        elif key in raw.host.model_fields_set:
            where = raw.source
        else:
            where = "default"
        rows.append((f"[host] {key}", text, where))
    diffusion = [name for name, r in raw.routes.items() if r.kind == "diffusion"]
    for field in type(settings).model_fields:
        if field.startswith("vision_") and getattr(settings, field) is not None:
            target = f" -> {', '.join(diffusion)}" if diffusion else " (no diffusion route)"
            rows.append((field.upper(), str(getattr(settings, field)), settings.origin(field) + target))
    return rows


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return str(value).lower()  # as models.toml spells it
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
