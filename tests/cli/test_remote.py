"""The commands that talk to a running host (llmhost.cli.remote): the address they reach,
the key and the hints their help and errors give, and `llmhost reload`. `llmhost status`'s
table is in test_status.py, `llmhost unload`'s line in test_unload.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmhost.cli import main
from llmhost.config import parse_catalog
from tests import catalogs
from tests.apphelp import make_app
from tests.fakes import Recorder

CONFIG_V1 = catalogs.text({"coder": catalogs.CODER})
CONFIG_V2 = catalogs.text({"coder": catalogs.CODER, "chat": catalogs.CHAT})


@pytest.mark.parametrize(("host", "url_host"), [("::1", "[::1]"), ("::", "[::1]"), ("0.0.0.0", "127.0.0.1")])
def test_the_local_url_of_an_ipv6_host_is_bracketed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host: str, url_host: str
) -> None:
    from llmhost.cli.remote import local_url
    from llmhost.settings import Settings

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((url_host.strip("[]"), 0))  # a port nothing listens on
        port = sock.getsockname()[1]
    monkeypatch.setenv("LLMHOST_HOST", host)
    monkeypatch.setenv("LLMHOST_PORT", str(port))
    assert local_url(Settings(_env_file=None)) == f"http://{url_host}:{port}"
    # The real client takes the URL: it is refused a connection, not an invalid URL.
    assert main(["status"]) == 1
    assert f"no llmhost answering at http://{url_host}:{port} (ConnectError)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["status", "reload"])
def test_help_says_where_the_key_comes_from_and_what_to_run_when_unreachable(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "VLLM_API_KEY, read from the environment, else from ./.env" in text
    assert "systemctl status llmhost" in text and "journalctl -u llmhost -e" in text
    # ...and the error says it too.
    assert main([command, "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert f"llmhost {command}: no llmhost answering at http://127.0.0.1:9" in err
    assert "`systemctl status llmhost`" in err and "`journalctl -u llmhost -e`" in err


def test_reload_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmhost.cli import main
    from tests.apphelp import ServerThread

    path = tmp_path / "models.toml"
    path.write_text(CONFIG_V1)
    with ServerThread(make_app(parse_catalog(CONFIG_V1, str(path)), factory=Recorder().factory)) as server:
        path.write_text(CONFIG_V2)
        assert main(["reload", "--url", server.url]) == 0
        assert "added chat" in capsys.readouterr().out
        path.write_text("[routes.x]\nkind = 'nope'\nmodel = 'm'\n")
        assert main(["reload", "--url", server.url]) == 1
        assert "current configuration stays" in capsys.readouterr().err
