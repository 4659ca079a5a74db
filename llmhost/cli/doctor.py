"""`llmhost check` as the doctor: what will go wrong later, each with what to do instead,
and the one command to run next.

Everything here is a warning (check still exits 0): what `serve` refuses outright is
refused by `check` before it gets here. Each look is cheap (files, one socket bind; the
machine's own in doctor_machine); only `--online` asks the Hugging Face Hub.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmhost.cli import doctor_machine
from llmhost.config import Catalog, RouteConfig
from llmhost.preflight.model import looks_like_path
from llmhost.pull.cache import problem, sudo, user_name
from llmhost.settings import Settings, can_write

# Repositories whose files the Hub serves only with a token of a user who accepted the
# licence. Without --online, these are all we know of.
KNOWN_GATED = ("stabilityai/stable-diffusion-3.5-*", "meta-llama/*")
UNIT_FILES = (
    Path("/etc/systemd/system/llmhost.service"),
    Path("/usr/lib/systemd/system/llmhost.service"),
    Path("/lib/systemd/system/llmhost.service"),
)


def warnings(settings: Settings, catalog: Catalog, port_taken: str | None, *, online: bool) -> list[str]:
    """Everything that will fail or surprise later, one paragraph each. `port_taken`: why
    `serve` could not listen (ports.port_problem), or None."""
    found: list[str] = []
    found += gated_without_token(settings, catalog.routes.values(), online=online)
    found += cache_not_writable(settings)
    found += prewarm_under_exclusive(catalog)
    found += doctor_machine.old_stack_variables()
    if port_taken is not None:
        found.append(f"`llmhost serve` {port_taken}")
    found += doctor_machine.nvml_under_wsl()
    found += doctor_machine.cuda_build_without_compiler()
    return found


def render(found: list[str]) -> str:
    lines = ["\nWarnings:"]
    for text in found:
        lines += wrap(text, "  - ", "    ")
    return "\n".join(lines)


def wrap(text: str, first: str, rest: str) -> list[str]:
    """Lines of at most 100 characters; paths, URLs and commands stay whole, for copying."""
    return textwrap.wrap(
        text,
        width=100,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=False,
    )


def gated_without_token(settings: Settings, routes: Iterable[RouteConfig], *, online: bool) -> list[str]:
    if settings.hf_token is not None:
        return []
    found = []
    for route in routes:
        if looks_like_path(route.model) or Path(route.model).expanduser().is_dir():
            continue
        gated = any(fnmatch.fnmatch(route.model, pattern) for pattern in KNOWN_GATED)
        if not gated and online:
            gated = _hub_says_gated(route)
        if gated:
            found.append(
                f"HF_TOKEN is not set, and route {route.name} uses {route.model}, a gated "
                "repository: its download fails (401). Accept its licence on "
                f"https://huggingface.co/{route.model}, create a Read token at "
                "https://huggingface.co/settings/tokens and set HF_TOKEN in .env (`hf auth login` "
                "as yourself does not reach the service's user)."
            )
    return found


def _hub_says_gated(route: RouteConfig) -> bool:
    """The Hub's own `gated` flag ("auto"/"manual", or False); False when it cannot be asked."""
    try:
        from huggingface_hub import HfApi

        revision = route.pipeline.revision if route.kind == "diffusion" else route.engine.get("revision")
        info = HfApi().model_info(route.model, revision=revision)
    except Exception:  # offline, unknown repo, ...: the download itself will say so
        return False
    return bool(info.gated)


def cache_not_writable(settings: Settings) -> list[str]:
    """The weights cache this user may not download into: what `serve` and `pull` run as
    this user then do, and the command that fills it as its owner."""
    cache = settings.weights_cache()
    refused = problem(cache)
    if refused is None:
        return []
    reason, owner = refused
    me = user_name(os.geteuid())
    if cache.fallback is not None:
        serve = (
            f"`llmhost serve` run as {me} reads and downloads the weights in {cache.serve_hub} "
            "instead, where a service running as another user never looks"
        )
    elif can_write(cache.hub):  # root, into the service user's cache
        serve = f"`llmhost serve` run as {me} downloads there as {me}"
    else:
        serve = f"`llmhost serve` run as {me} reads it as it is: each model not in it yet fails to download"
    pull = "`llmhost pull` refuses to download there (exit 2)"
    if owner is not None:
        command = shlex.join([*sudo(cache, owner), ".venv/bin/llmhost", "pull"])
        fix = f"Fill it as {owner}: `{command}`, or set HF_HOME to a cache you can write."
    else:
        fix = (
            "Set HF_HOME to a cache you can write, or make this one writable by the user "
            "`llmhost serve` runs as."
        )
    return [f"Weights cache: {reason}. {serve}; {pull}. {fix}"]


def prewarm_under_exclusive(catalog: Catalog) -> list[str]:
    prewarm = catalog.host.prewarm
    if catalog.host.policy != "exclusive" or len(prewarm) < 2:
        return []
    return [
        f'{len(prewarm)} routes to prewarm ({", ".join(prewarm)}) under policy "exclusive": one '
        "model at a time, so each load evicts the one before and only the last to load stays "
        'loaded. Prewarm one route, or use policy = "fit" in [host] if they fit together.'
    ]


@dataclass(frozen=True)
class Unit:
    """The installed llmhost.service, as far as the next step needs it."""

    user: str
    directory: str
    executable: str


def installed_unit() -> Unit | None:
    """llmhost.service if installed (a file look, no systemctl call)."""
    for path in UNIT_FILES:
        try:
            text = path.read_text()
        except OSError:
            continue
        keys: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key in ("User", "WorkingDirectory", "ExecStart"):
                keys[key] = value.strip()
        executable = (keys.get("ExecStart") or "llmhost").split()[0].lstrip("-@+!:")
        return Unit(keys.get("User", "root"), keys.get("WorkingDirectory", "."), executable)
    return None


def uncached_routes(settings: Settings, routes: Iterable[RouteConfig]) -> list[str]:
    """Routes whose model is not in the cache `serve` would read (their entry file, at
    their pinned revision; local paths count as there)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return []
    hub = settings.weights_cache().hub
    missing = []
    for route in routes:
        if looks_like_path(route.model) or Path(route.model).expanduser().is_dir():
            continue
        if route.kind == "diffusion":
            filename, revision = "model_index.json", route.pipeline.revision
        else:
            filename, revision = "config.json", route.engine.get("revision")
        try:
            found = try_to_load_from_cache(route.model, filename, cache_dir=hub, revision=revision)
        except Exception:  # an unreadable cache (another user's) reads as not cached
            found = None
        if not isinstance(found, str):
            missing.append(route.name)
    return missing


def next_line(
    uncached: list[str],
    unit: Unit | None,
    port_free: bool,
    llmhost_running: bool,
    port: int,
    config: Path | None = None,
    serve_flags: str = "",
) -> str:
    """The one thing to run next, for the state check found."""
    flag = f" --config {config}" if config is not None else ""
    serve = f"llmhost serve{flag}{serve_flags}"  # with check's --host/--port, as it was checked
    steps = []
    if uncached:
        if unit is not None:
            pull = f"cd {unit.directory} && sudo -u {unit.user} {unit.executable} pull"
        else:
            pull = f"llmhost pull{flag}"
        steps.append(f"`{pull}` (not in the cache yet: {', '.join(uncached)})")
    if not port_free and not llmhost_running:
        steps.append(f"free port {port} (see Warnings)")
    if unit is not None:
        steps.append("`sudo systemctl restart llmhost`")
    elif llmhost_running:
        steps.append(f"stop the llmhost running on port {port}, then `{serve}`")
    else:
        steps.append(f"`{serve}`")
    return "Next: " + ", then ".join(steps) + "."
