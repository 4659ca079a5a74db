"""`python -m llmhost.cli`, as `python -m llmhost`."""

from llmhost.cli.main import console

console()
