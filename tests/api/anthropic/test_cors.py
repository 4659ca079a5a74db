"""CORS for Anthropic's clients in a browser: with `cors_origins` set, a page of a configured
origin may send the key as `x-api-key` beside Anthropic's own headers (the preflight allows
them), and the request itself is answered to that origin; the key is still required."""

from __future__ import annotations

from tests import catalogs
from tests.apphelp import make_app, running
from tests.suites.test_fuzz import ServingRecorder

KEY = "sk-anthropic-cors"
ORIGIN = "https://webui.example"
CATALOG = catalogs.catalog(catalogs.CODER_AND_VISION, cors_origins=[ORIGIN])
HEADERS = "content-type,x-api-key,anthropic-version,anthropic-beta,anthropic-dangerous-direct-browser-access"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": HEADERS,
}
HELLO = {"model": "coder-fast", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_preflight_allows_anthropics_headers() -> None:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    async with running(make_app(CATALOG, api_key=KEY, factory=recorder.factory)) as client:
        preflight = await client.options("/v1/messages", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert set(HEADERS.split(",")) <= allowed
        # Headers nobody listed are still refused.
        other = await client.options(
            "/v1/messages", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-something-else"}
        )
        assert other.status_code == 400

        browser = {"Origin": ORIGIN, "anthropic-version": "2023-06-01"}
        keyed = await client.post("/v1/messages", json=HELLO, headers={**browser, "x-api-key": KEY})
        assert keyed.status_code == 200 and keyed.headers["access-control-allow-origin"] == ORIGIN
        keyless = await client.post("/v1/messages", json=HELLO, headers=browser)
        assert keyless.status_code == 401  # CORS lets a page read replies; it does not replace the key
    assert recorder.served == ["message coder"]
