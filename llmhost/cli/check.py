"""`llmhost check`: the route table, the effective settings and the fit estimate."""

from __future__ import annotations

import argparse

from llmhost.cli.effective import effective
from llmhost.cli.loading import load_raw
from llmhost.config import Catalog, ConfigError
from llmhost.settings import Settings, refuse_exposure


def cmd_check(args: argparse.Namespace) -> int:
    from llmhost.preflight.model import refuse_missing

    settings, raw = load_raw(args.config)
    catalog = settings.apply_to(raw)
    refuse_missing(catalog)  # a path that does not exist would evict, then fail, at load
    address = args.host or settings.llmhost_host
    refuse_exposure(address, settings.api_key, args.allow_no_key)  # what `serve` refuses, word for word
    rows = [("ROUTE", "KIND", "AUTH", "IDLE", "MODEL", "SERVED NAMES")]
    for r in catalog.routes.values():
        idle = r.idle_unload_seconds(catalog.host)
        rows.append(
            (
                r.name,
                r.kind,
                r.auth_mode,
                "never (resident)" if idle is None else f"{idle:g}s",
                r.model,
                ", ".join(r.served_names) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    host = catalog.host
    print(
        f"\n{catalog.source}: {len(catalog.routes)} routes, policy {host.policy}, "
        f"start timeout {host.start_timeout_seconds:g}s, prewarm {', '.join(host.prewarm) or 'none'}"
    )
    _print_settings(effective(settings, raw, args.config))
    _print_standby(catalog)
    from llmhost.gpu.margin import check_line  # the engine margin in use, and where it came from

    print("\n" + check_line(catalog.host, settings.weights_cache()))
    from llmhost.estimate import standby as standby_ram  # does level 1 fit standby_ram_gib?

    if (ram := standby_ram.report(catalog, settings, online=args.online)) is not None:
        print("\n" + ram)
    _print_fit(args, settings, catalog)
    _print_doctor(args, settings, catalog, address, args.port or settings.llmhost_port)
    return 0


def _print_doctor(
    args: argparse.Namespace, settings: Settings, catalog: Catalog, host: str, port: int
) -> None:
    """The warnings block (what will fail later) and the "Next:" line."""
    from llmhost.cli import doctor, ports

    taken = ports.port_problem(host, port)
    found = doctor.warnings(settings, catalog, taken, online=args.online)
    if found:
        print(doctor.render(found))
    uncached = doctor.uncached_routes(settings, catalog.routes.values())
    running = taken is not None and ports.answers_as_llmhost(host, port)
    unit = doctor.installed_unit()
    serve_flags = "".join(
        f" --{name} {value}" for name, value in (("host", args.host), ("port", args.port)) if value
    )
    line = doctor.next_line(uncached, unit, taken is None, running, port, args.config, serve_flags)
    print("\n" + "\n".join(doctor.wrap(line, "", "      ")))


def _print_standby(catalog: Catalog) -> None:
    """Which routes ask for warm standby, and whether this machine's vLLM can do it."""
    wanting = [r for r in catalog.routes.values() if r.standby == "sleep"]
    if not wanting:
        return
    names = ", ".join(f"{r.name} (level {r.sleep_level})" for r in wanting)
    try:
        from llmhost.backends.vllm.standby import sleep_mode_problem

        problem = sleep_mode_problem()  # imports vLLM's platform detection: a few seconds
    except ImportError as exc:
        problem = f"vLLM is not installed here ({exc.name})"
    if problem is None:
        print(f"\nStandby (docs/standby.md): {names}: available on this machine's vLLM.")
    else:
        print(f"\nStandby (docs/standby.md): {names}: unavailable: {problem}; they swap by shutdown.")


def _print_settings(rows: list[tuple[str, str, str]]) -> None:
    """The effective host settings of `check`, each with where its value came from."""
    print("\nSettings (environment > .env > models.toml > default):")
    table = [("SETTING", "VALUE", "FROM"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    for name, value, origin in table:
        print(f"  {name.ljust(widths[0])}  {value.ljust(widths[1])}  {origin}")


def _print_fit(args: argparse.Namespace, settings: Settings, catalog: Catalog) -> None:
    """The fit estimate of `check`: for --gpu-memory GIB, else for the GPU NVML sees."""

    from llmhost import estimate

    if args.gpu_memory is not None:
        if not args.gpu_memory > 0:
            raise ConfigError(f"--gpu-memory is the GPU's size in GiB (e.g. 16), not {args.gpu_memory:g}.")
        gpu_bytes, label = int(args.gpu_memory * estimate.GIB), "--gpu-memory"
    else:
        detected, label = estimate.detected_gpu_bytes()
        if detected is None:
            print(f"\nNo fit estimate: no GPU seen ({label}); pass --gpu-memory GIB for one.")
            return
        gpu_bytes = detected
    if args.online:
        settings.export_hub_token()
    # The cache `llmhost serve` reads, resolved now (huggingface_hub's own default is
    # fixed when it is first imported, so it may name another cache).
    cache = settings.weights_cache().serve_hub
    estimates = estimate.estimate_routes(catalog.routes.values(), cache_dir=cache, online=args.online)
    download = None
    if args.online:  # what `llmhost pull` would fetch for the routes not in the cache
        from llmhost.estimate.render import not_cached
        from llmhost.pull import download_bytes

        download = download_bytes([catalog.routes[name] for name in not_cached(estimates)])
    print("\n" + estimate.render(estimates, gpu_bytes, label, catalog.host.policy, download))
    from llmhost.estimate.resident import room_for_others  # resident routes leave the others room?

    if (room := room_for_others(catalog.routes.values(), estimates, gpu_bytes, label)) is not None:
        print("\n" + "\n".join(room.lines))
        if room.refusal is not None:
            raise ConfigError(f"{catalog.source}: {room.refusal}")
    from llmhost.estimate.context import report as fitted  # contexts vLLM would refuse, and the retry's

    if (lines := fitted(estimates, gpu_bytes)) is not None:
        print(lines)
