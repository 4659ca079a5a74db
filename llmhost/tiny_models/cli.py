"""``python -m llmhost.tiny_models [DIR]``: build the tiny models and print their paths."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llmhost.tiny_models.cache import default_cache_dir
from llmhost.tiny_models.models import ensure_tiny_models


def main(argv: list[str] | None = None) -> int:
    """``python -m llmhost.tiny_models [DIR]``: build the tiny models and print paths."""
    parser = argparse.ArgumentParser(
        prog="python -m llmhost.tiny_models",
        description="Build tiny random-weight models for tests and the demo (cached).",
    )
    parser.add_argument(
        "cache_dir",
        nargs="?",
        type=Path,
        default=None,
        help=f"where to build them (default: {default_cache_dir()})",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = ensure_tiny_models(args.cache_dir)
    elapsed = time.perf_counter() - started
    print(f"llm:     {models.llm}")
    print(f"llm_alt: {models.llm_alt}")
    print(f"sd3:     {models.sd3}")
    print(f"({elapsed:.1f} s)", file=sys.stderr)
    return 0
