"""llmhost: several models on one GPU behind one OpenAI-compatible server."""

__version__ = "0.1.0"
