"""Key check, per route: `auth = "key"` routes need VLLM_API_KEY once it is set.

The key comes as `Authorization: Bearer <key>` (OpenAI's clients) or as `x-api-key: <key>`
(Anthropic's: the anthropic SDKs and Claude Code with ANTHROPIC_API_KEY send it there).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from llmhost.errors import Unauthorized


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _x_api_key(request: Request) -> str | None:
    return request.headers.get("x-api-key", "").strip() or None


class KeyCheck:
    def __init__(self, api_key: str | None) -> None:
        self._key = api_key.encode() if api_key else None

    def allows(self, request: Request) -> bool:
        """Whether the request may use keyed routes (no key is set, or it sent the key)."""
        if self._key is None:
            return True
        sent = (_bearer(request), _x_api_key(request))
        # Constant time: the comparison must not leak how much of the key matched.
        return any(token is not None and hmac.compare_digest(token.encode(), self._key) for token in sent)

    def require(self, request: Request, mode: str = "key") -> None:
        """Raise 401 unless the request may pass. `mode` is the route's auth mode."""
        if mode == "none" or self.allows(request):
            return
        if _bearer(request) is None and _x_api_key(request) is None:
            raise Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' "
                "(the host's VLLM_API_KEY)."
            )
        raise Unauthorized("Incorrect API key.")
