"""Bearer-key check, per route: `auth = "key"` routes need VLLM_API_KEY once it is set."""

from __future__ import annotations

import hmac

from fastapi import Request

from llmhost.errors import Unauthorized


class KeyCheck:
    def __init__(self, api_key: str | None) -> None:
        self._key = api_key.encode() if api_key else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def allows(self, request: Request) -> bool:
        """Whether the request may use keyed routes (no key is set, or it sent the key)."""
        if self._key is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # Constant time: the comparison must not leak how much of the key matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)

    def require(self, request: Request, mode: str = "key") -> None:
        """Raise 401 unless the request may pass. `mode` is the route's auth mode."""
        if mode == "none" or self.allows(request):
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "Missing API key: send 'Authorization: Bearer <key>' (the host's VLLM_API_KEY)."
            )
        raise Unauthorized("Incorrect API key.")
