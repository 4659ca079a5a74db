"""systemd's readiness protocol for `Type=notify`: datagrams to $NOTIFY_SOCKET.

`READY=1` goes out once the socket listens and `/healthz` answers through it, so
`systemctl start llmhost` (and units ordered after it) return only when clients can
connect; `STOPPING=1` as the graceful shutdown begins. Without $NOTIFY_SOCKET (not under
systemd, or another `Type=`) nothing is sent. The protocol is a few lines, see
sd_notify(3); no library needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

import httpx
import uvicorn

from llmhost.cli.ports import url_host

log = logging.getLogger("llmhost")


class Notifier:
    """Sends state lines to the socket systemd named in $NOTIFY_SOCKET, if any.

    The variable is taken out of the environment, so vLLM's engine processes (children)
    never see it and cannot report readiness for the unit."""

    def __init__(self) -> None:
        address = os.environ.pop("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace.
        self.address = "\0" + address[1:] if address.startswith("@") else address

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:  # systemd went away, a stale variable: never fatal
            log.warning("could not notify systemd at %s: %s", self.address.lstrip("\0"), exc)


class NotifyingServer(uvicorn.Server):
    """uvicorn's server, telling systemd when it is ready and when it stops."""

    def __init__(
        self, config: uvicorn.Config, notifier: Notifier, on_stop: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.notifier = notifier
        self.on_stop = on_stop  # runs as the shutdown begins, before connections drain

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # the lifespan has run and the socket listens
        if self.started and await self._healthy():
            self.notifier.send("READY=1", "STATUS=serving")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.send("STOPPING=1", "STATUS=draining requests, then shutting engines down")
        if self.on_stop is not None:
            self.on_stop()
        await super().shutdown(sockets)

    async def _healthy(self, attempts: int = 50) -> bool:
        """GET /healthz through the listening socket, as a client would (the server runs
        on this event loop, so the request is answered while we await it)."""
        url = f"http://{url_host(self.config.host)}:{self.config.port}/healthz"
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            for _ in range(attempts):
                try:
                    if (await client.get(url)).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        log.error("%s did not answer; not reporting readiness to systemd", url)
        return False
