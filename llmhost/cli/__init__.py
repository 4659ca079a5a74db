"""The `llmhost` command: one module per command group.

`main` (the parser and the entry points), `loading` (settings and models.toml as the
commands load them), `serve` (serve, demo), `check`, `remote` (status, reload), `pull`.
"""

from llmhost.cli.loading import load, load_raw
from llmhost.cli.main import build_parser, console, main

__all__ = ["build_parser", "console", "load", "load_raw", "main"]
