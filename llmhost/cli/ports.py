"""Who holds a TCP port: so that `serve` and `check` can name the process in the way.

The usual culprit on a machine that ran the container stack llmhost replaces is that
stack itself (its services restart on their own), or an llmhost already running as the
service. Under WSL2's mirrored networking a listener on the Windows side (Docker
Desktop's) takes the port inside Linux too, yet no Linux process holds it: then we say so.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC_VERSION = Path("/proc/version")
OLD_STACK_STOP = "docker compose --profile launcher down"
# Processes that publish a container's port.
_CONTAINER_PUBLISHERS = ("docker-proxy", "rootlesskit", "slirp4netns", "com.docker", "vpnkit", "podman")


@dataclass(frozen=True)
class Holder:
    """A process listening on the port, as far as this user may see it."""

    address: str
    pid: int | None  # None: another user's process (its open files are hidden from us)
    user: str | None
    name: str | None = None
    cmdline: str | None = None

    @property
    def is_llmhost(self) -> bool:
        return self.cmdline is not None and is_llmhost_cmdline(self.cmdline.split())

    @property
    def is_container(self) -> bool:
        text = f"{self.name or ''} {self.cmdline or ''}"
        return any(part in text for part in _CONTAINER_PUBLISHERS)

    def describe(self) -> str:
        if self.pid is None:
            who = f"a process of user {self.user}" if self.user else "a process"
            return f"{who}, whose pid is hidden from you"
        what = " ".join((self.cmdline or self.name or "?").split())  # one line, whatever argv held
        if len(what) > 100:
            what = what[:97] + "..."
        return f"pid {self.pid} ({what}), user {self.user or '?'}"


def answers_as_llmhost(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an llmhost answers on host:port: its /healthz says `{"status": "ok"}` to
    anyone, with no key and without touching a model (llmhost/api/admin.py)."""
    import httpx

    url = f"http://{url_host(host)}:{port}/healthz"
    try:
        response = httpx.get(url, timeout=timeout, trust_env=False)
        return response.status_code == 200 and response.json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError):
        return False


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to `host` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def bind_error(host: str, port: int) -> OSError | None:
    """The error binding (host, port) gives now, as uvicorn would bind it; None if it is free."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}: {exc.strerror}")
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            # asyncio's create_server (uvicorn) sets SO_REUSEADDR: connections of an earlier
            # run in TIME_WAIT do not count as taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return exc
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why `serve` cannot listen on host:port, naming who holds it; None when it can."""
    error = bind_error(host, port)
    if error is None:
        return None
    where = f"{_show(host) if host else '*'}:{port}"
    if error.errno == errno.EACCES:
        return f"cannot listen on {where}: ports below 1024 need root; choose LLMHOST_PORT=8000 or higher."
    if error.errno != errno.EADDRINUSE:
        return f"cannot listen on {where}: {error.strerror or error}."
    return f"cannot listen on {where}: the port is taken by {held_by(port, answers_as_llmhost(host, port))}"


def held_by(port: int, llmhost: bool = False) -> str:
    """Who listens on `port`, and what to do about it, in a sentence or two. `llmhost`:
    what listens there answers as an llmhost does (the service, whose pid another user
    may not see)."""
    holders = listeners(port)
    named = [h for h in holders if h.pid is not None]
    if llmhost or any(h.is_llmhost for h in named):
        which = f" ({named[0].describe()})" if named else ""
        return (
            f"an llmhost already running{which}: `llmhost status` shows it; if it is the service, "
            "`sudo systemctl stop llmhost` stops it."
        )
    if not holders:
        if is_wsl():
            return (
                "a Windows program: no process inside WSL listens on it, and under WSL2's mirrored "
                "networking Windows' listeners take the port here too. It may be the old container "
                f"stack in Docker Desktop: `{OLD_STACK_STOP}` in its directory stops it; on Windows, "
                f"`netstat -ano | findstr :{port}` names the process."
            )
        return (
            f"a process you cannot see (`sudo ss -ltnp 'sport = :{port}'` names it). It may be the "
            f"old container stack: `{OLD_STACK_STOP}` in its directory stops it."
        )
    holder = min(holders, key=lambda h: h.pid is None)  # one we can name, if any
    text = holder.describe() + "."
    if holder.is_container or holder.pid is None:
        text += f" If it is the old container stack, `{OLD_STACK_STOP}` in its directory stops it"
        if holder.pid is None:
            text += f"; `sudo ss -ltnp 'sport = :{port}'` names the process"
        return text + "."
    return text + " Stop it, or choose another port (LLMHOST_PORT or --port)."


def listeners(port: int) -> list[Holder]:
    """The processes listening on TCP `port`: psutil where it may look, else /proc."""
    found = _from_psutil(port)
    if found is None or any(h.pid is None for h in found):
        # Another user's socket: psutil gives no pid; /proc/net still names its owner.
        found = _from_proc(port) or found or []
    return found


def is_wsl(proc_version: Path | None = None) -> bool:
    try:
        return "microsoft" in (proc_version or PROC_VERSION).read_text().lower()
    except OSError:
        return False


def is_llmhost_cmdline(argv: list[str]) -> bool:
    """`.venv/bin/llmhost serve`, `python -m llmhost serve` and the like."""
    for i, arg in enumerate(argv):
        if Path(arg).name == "llmhost":
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1].split(".")[0] == "llmhost":
            return True
    return False


def _from_psutil(port: int) -> list[Holder] | None:
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):  # macOS without root
        return None
    return [
        _holder(f"{_show(c.laddr.ip)}:{port}", c.pid, None)
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]


def _from_proc(port: int) -> list[Holder]:
    """Linux's socket tables: listening sockets with their owner's uid and inode, and the
    inode found among the open files of the processes this user may look into."""
    sockets: list[tuple[str, int, str]] = []  # address, uid, inode
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port:
                sockets.append((f"{_show(_address(address, width))}:{port}", int(fields[7]), fields[9]))
    if not sockets:
        return []
    owners = _inode_owners({inode for _, _, inode in sockets})
    return [_holder(address, owners.get(inode), uid) for address, uid, inode in sockets]


def _inode_owners(inodes: set[str]) -> dict[str, int]:
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
            with fds:
                for fd in fds:
                    try:
                        target = os.readlink(fd.path)
                    except OSError:
                        continue
                    if target in wanted:
                        owners[wanted[target]] = int(entry.name)
        except OSError:  # another user's process, or gone
            continue
    return owners


def _holder(address: str, pid: int | None, uid: int | None) -> Holder:
    import psutil

    name = cmdline = user = None
    if pid is not None:
        try:
            process = psutil.Process(pid)
            name, user = process.name(), process.username()
            cmdline = " ".join(process.cmdline()) or None
        except (psutil.Error, OSError):
            pass
    if user is None and uid is not None:
        user = _user_name(uid)
    return Holder(address=address, pid=pid, user=user, name=name, cmdline=cmdline)


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _address(hex_address: str, width: int) -> str:
    """/proc/net/tcp's address: 32-bit words in host byte order (little-endian here)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if width == 4 else socket.AF_INET6, words)


def _show(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip
