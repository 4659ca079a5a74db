"""The OpenAI-compatible LLM endpoints: chat completions, completions and the model lists."""
