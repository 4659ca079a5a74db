"""The units in systemd/, checked by systemd's own tools.

`systemd-analyze verify` runs on every unit, in a scratch root that holds the system's
own units plus a stand-in for each ExecStart= program (the real ones live in install
paths such as /opt/llmhost). `systemd-analyze security` rates each unit; llmhost's and
Open WebUI's must stay at an exposure of 5.0 or less. Skipped where systemd-analyze is
missing (.ci/run installs Debian's systemd package).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from llmhost.config import HostConfig

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "systemd").glob("*.service"))
MAX_EXPOSURE = {"llmhost.service": 5.0, "open-webui.service": 5.0}
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian: systemd)")


def _settings(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of each setting, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", unit.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def _scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    system_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
        for key, value in _settings(unit):
            if key.startswith("Exec") and value:
                program = shlex.split(value)[0].lstrip("-@+!:")
                stub = root / program.lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
    return root


def test_units_exist() -> None:
    names = {unit.name for unit in UNITS}
    assert {"llmhost.service", "open-webui.service"} <= names, names


def test_verify_every_unit(tmp_path: Path) -> None:
    assert ANALYZE is not None
    root = _scratch_root(tmp_path)
    names = [unit.name for unit in UNITS]
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", f"--root={root}", *names], capture_output=True, text=True, timeout=120
    )
    # verify exits 0 on settings it ignores, so any output at all is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_security_exposure(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    exposure = float(found.group(1))
    with capsys.disabled():
        print(f"\nsystemd-analyze security {unit.name}: exposure {exposure} {found.group(2)}")
    if unit.name in MAX_EXPOSURE:
        assert exposure <= MAX_EXPOSURE[unit.name], result.stdout


def test_llmhost_unit_contract() -> None:
    settings = _settings(REPO / "systemd" / "llmhost.service")
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)
    assert values["Type"] == ["notify"]
    assert "2" in values["RestartPreventExitStatus"][0].split()
    # Never wait for network-online.target: WSL2's wait-online services can stall boot.
    for key in ("After", "Wants", "Requires", "BindsTo"):
        assert not any("network-online.target" in v for v in values.get(key, [])), key
    # The GPU's device nodes must stay visible: /dev/nvidia*, and /dev/dxg under WSL2.
    assert "PrivateDevices" not in values and "DevicePolicy" not in values
    assert values["ProtectSystem"] == ["strict"] and values["NoNewPrivileges"] == ["yes"]
    # llmhost's own bound on a shutdown: uvicorn's drain, then the manager's drain plus
    # start timeout plus 60 s for unloading (llmhost/lifecycle/manager.py: close()).
    host = HostConfig()
    own_bound = host.drain_timeout_seconds + host.drain_timeout_seconds + host.start_timeout_seconds + 60
    assert float(values["TimeoutStopSec"][0]) >= own_bound
    assert values["KillMode"] == ["mixed"]


def test_open_webui_unit_uses_shipped_settings() -> None:
    text = (REPO / "systemd" / "open-webui.service").read_text()
    assert "EnvironmentFile=/opt/llmhost/clients/open-webui.env" in text
    assert "OPENAI_API_KEY=${VLLM_API_KEY}" in text
    assert "StateDirectory=open-webui" in text and "DATA_DIR=/var/lib/open-webui" in text
