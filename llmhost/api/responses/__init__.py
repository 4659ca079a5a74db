"""OpenAI's Responses API (`/v1/responses`), as Codex CLI speaks it."""
