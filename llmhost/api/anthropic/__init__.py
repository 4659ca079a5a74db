"""Anthropic's Messages API (`/v1/messages`), as Claude Code and the anthropic SDKs speak it."""
