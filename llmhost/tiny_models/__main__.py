"""``python -m llmhost.tiny_models [DIR]``."""

from llmhost.tiny_models.cli import main

raise SystemExit(main())
