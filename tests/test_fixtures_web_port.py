"""The web test fixtures start a console on a port that was free when chosen: if another process
takes it first, the console is started again on another port, never silently talking to the
wrong server (tests/fixtures_web.py ``start_console``)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

import fixtures_web
from fixtures_web import make_users, start_console


def test_a_port_taken_in_between_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "web.db"
    make_users(db_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    ports = iter([busy])
    real = fixtures_web.free_port
    monkeypatch.setattr(fixtures_web, "free_port", lambda: next(ports, None) or real())
    try:
        console = start_console(db_path, tmp_path / "web.log")
        try:
            assert not console.url.endswith(f":{busy}")
            assert httpx.get(console.url + "/login", timeout=5).status_code == 200
        finally:
            console.stop()
    finally:
        taken.close()
