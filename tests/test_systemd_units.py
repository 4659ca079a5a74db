"""The units in systemd/, checked by systemd's own tools.

`systemd-analyze verify` runs on every unit, in a scratch root that holds the system's
own units plus a stand-in for each ExecStart= program (the real ones live in install
paths such as /opt/llmhost). `systemd-analyze security` rates each unit; llmhost's and
Open WebUI's must stay at an exposure of 5.0 or less. Those two are skipped where
systemd-analyze is missing (.ci/run installs Debian's systemd package); the rules on the
units' settings run everywhere.
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

needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: systemd)"
)


def _settings(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of each setting, continuation lines joined."""
    return _settings_text(unit.read_text())


def _settings_text(unit_text: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", unit_text)
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


def _values(unit_text: str) -> dict[str, list[str]]:
    """Each key's values in order; an empty assignment clears a list, as systemd does."""
    values: dict[str, list[str]] = {}
    for key, value in _settings_text(unit_text):
        if value == "":
            values[key] = []
        else:
            values.setdefault(key, []).append(value)
    return values


def _yes(values: dict[str, list[str]], key: str) -> bool:
    return bool(values.get(key)) and values[key][-1].lower() in ("1", "yes", "true", "on")


# The GPU's device nodes: /dev/dxg under WSL2; on Linux, /dev/nvidia0.., /dev/nvidiactl and
# /dev/nvidia-modeset (the "nvidia-frontend" group of /proc/devices) and /dev/nvidia-uvm.
GPU_DEVICES = ("/dev/dxg", "char-nvidia-frontend", "char-nvidia-uvm")


def implied_device_allow_list(values: dict[str, list[str]]) -> list[str]:
    """Settings that put the unit under a device allow-list, on any systemd still in use.

    Any DeviceAllow= entry (DevicePolicy=auto then closes everything not listed),
    DevicePolicy=closed/strict, PrivateDevices=yes (implies DevicePolicy=closed), and
    ProtectClock=yes, which before systemd 252 adds "DeviceAllow=char-rtc r" whatever else
    is set (Ubuntu 22.04 has 249; fixed by systemd PR #25075). ProtectKernelLogs= and the
    other Protect*= settings drop capabilities and hide files but set no device policy.
    """
    reasons = []
    if values.get("DeviceAllow"):
        reasons.append("DeviceAllow=")
    if values.get("DevicePolicy") and values["DevicePolicy"][-1] in ("closed", "strict"):
        reasons.append(f"DevicePolicy={values['DevicePolicy'][-1]}")
    if _yes(values, "PrivateDevices"):
        reasons.append("PrivateDevices=yes")
    if _yes(values, "ProtectClock"):
        reasons.append("ProtectClock=yes (DeviceAllow=char-rtc before systemd 252)")
    return reasons


def gpu_device_problems(values: dict[str, list[str]]) -> list[str]:
    """Why the GPU would be shut out: an implied allow-list that does not name its nodes."""
    reasons = implied_device_allow_list(values)
    if not reasons:
        return []
    allowed = {entry.split()[0] for entry in values.get("DeviceAllow", [])}
    return [
        f"{' + '.join(reasons)}: no DeviceAllow={device}" for device in GPU_DEVICES if device not in allowed
    ]


def test_units_exist() -> None:
    names = {unit.name for unit in UNITS}
    assert {"llmhost.service", "open-webui.service"} <= names, names


@needs_analyze
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


@needs_analyze
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
    assert gpu_device_problems(values) == []
    # `systemctl reload llmhost`: SIGHUP re-reads models.toml (llmhost/server/reload.py).
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert values["ProtectSystem"] == ["strict"] and values["NoNewPrivileges"] == ["yes"]
    # llmhost's own bound on a shutdown: uvicorn's drain, then the manager's drain plus
    # start timeout plus 60 s for unloading (llmhost/lifecycle/manager.py: close()).
    host = HostConfig()
    own_bound = host.drain_timeout_seconds + host.drain_timeout_seconds + host.start_timeout_seconds + 60
    assert float(values["TimeoutStopSec"][0]) >= own_bound
    assert values["KillMode"] == ["mixed"]


def test_open_webui_unit_uses_shipped_settings() -> None:
    values = _values((REPO / "systemd" / "open-webui.service").read_text())
    assert "/opt/llmhost/clients/open-webui.env" in values["EnvironmentFile"]
    assert values["StateDirectory"] == ["open-webui"]
    assert _environment(values)["DATA_DIR"] == "/var/lib/open-webui"


def _environment(values: dict[str, list[str]]) -> dict[str, str]:
    """The Environment= assignments in order, later ones winning (drop-ins come last)."""
    env: dict[str, str] = {}
    for line in values.get("Environment", []):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_open_webui_unit_reads_no_llmhost_env() -> None:
    """Only the shipped settings and a key file of its own: llmhost's .env carries HF_HOME
    (which would replace Open WebUI's cache path with one it cannot write) and HF_TOKEN."""
    text = (REPO / "systemd" / "open-webui.service").read_text()
    values = _values(text)
    files = [value.lstrip("-") for value in values["EnvironmentFile"]]
    assert files == ["/opt/llmhost/clients/open-webui.env", "/etc/open-webui/llmhost-key.env"]
    assert not any(Path(f).name == ".env" for f in files), files
    settings = " ".join(value for _, value in _settings_text(text))
    assert "VLLM_API_KEY" not in settings and "HF_TOKEN" not in settings
    assert _environment(values)["HF_HOME"] == "/var/lib/open-webui/cache"
    # EnvironmentFile= beats Environment=, so the shipped settings must not set what the unit
    # and its drop-ins own.
    shipped = (REPO / "clients" / "open-webui.env").read_text()
    for key in ("OPEN_WEBUI_HOST", "OPEN_WEBUI_PORT", "HF_HOME", "DATA_DIR", "HF_TOKEN", "VLLM_API_KEY"):
        assert not re.search(rf"^{key}=", shipped, re.MULTILINE), key


def _readme_drop_in() -> str:
    """The drop-in systemd/README.md shows for Open WebUI on the LAN."""
    readme = (REPO / "systemd" / "README.md").read_text()
    found = re.search(r"```ini\n(\[Service\]\nEnvironment=OPEN_WEBUI_HOST=[^`]*)```", readme)
    assert found, "systemd/README.md shows no Open WebUI drop-in"
    return found.group(1)


def test_open_webui_listen_address_is_one_line_a_drop_in_overrides(tmp_path: Path) -> None:
    unit_text = (REPO / "systemd" / "open-webui.service").read_text()
    values = _values(unit_text)
    listen = [line for line in values["Environment"] if "OPEN_WEBUI_HOST=" in line]
    assert listen == ["OPEN_WEBUI_HOST=127.0.0.1 OPEN_WEBUI_PORT=3000"]
    (exec_start,) = values["ExecStart"]
    assert "--host ${OPEN_WEBUI_HOST} --port ${OPEN_WEBUI_PORT}" in exec_start

    def listen_args(env: dict[str, str]) -> list[str]:
        argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], exec_start))
        return argv[argv.index("--host") :]

    assert listen_args(_environment(values)) == ["--host", "127.0.0.1", "--port", "3000"]
    drop_in = _readme_drop_in()
    with_drop_in = _values(unit_text + "\n" + drop_in)
    assert listen_args(_environment(with_drop_in)) == ["--host", "0.0.0.0", "--port", "3000"]
    if ANALYZE is not None:
        # systemd itself accepts the unit with that drop-in.
        root = _scratch_root(tmp_path)
        (root / "etc/systemd/system/open-webui.service.d").mkdir()
        (root / "etc/systemd/system/open-webui.service.d/listen.conf").write_text(drop_in)
        result = subprocess.run(
            [ANALYZE, "verify", "--man=no", f"--root={root}", "open-webui.service"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
            result.stdout + result.stderr
        )


def test_gpu_device_rule_does_not_depend_on_this_systemd() -> None:
    """The rule, not this machine's systemd (252+ here, where ProtectClock= no longer closes
    devices), decides: the unit as it was with ProtectClock=yes fails it on any machine."""
    shipped = (REPO / "systemd" / "llmhost.service").read_text()
    assert gpu_device_problems(_values(shipped)) == []
    for setting in (
        "ProtectClock=yes",
        "PrivateDevices=true",
        "DevicePolicy=closed",
        "DeviceAllow=char-rtc r",
    ):
        text = shipped.replace("[Install]", f"[Service]\n{setting}\n[Install]")
        problems = gpu_device_problems(_values(text))
        assert len(problems) == len(GPU_DEVICES), (setting, problems)
        # Naming the GPU's nodes makes such a setting safe again.
        allowed = "".join(f"DeviceAllow={device} rw\n" for device in GPU_DEVICES)
        fixed = shipped.replace("[Install]", f"[Service]\n{setting}\n{allowed}[Install]")
        assert gpu_device_problems(_values(fixed)) == [], setting
    # Explicitly off is not a policy.
    off = shipped.replace("[Install]", "[Service]\nProtectClock=no\nPrivateDevices=no\n[Install]")
    assert gpu_device_problems(_values(off)) == []
