"""Test support: the real agentyard server binary, started on a free port with the memory store.

The binary is ``$AGENTYARD_BIN``, or ``debug/agentyard`` under ``$CARGO_TARGET_DIR`` (default:
``target`` at the repository root). Build it with ``cargo build -p agentyard --locked``;
``scripts/test-python`` does that and then runs these tests.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest


REPO_ROOT = Path(__file__).resolve().parents[3]
SDK_ROOT = Path(__file__).resolve().parents[1]


def agentyard_bin() -> Path:
    explicit = os.environ.get("AGENTYARD_BIN")
    if explicit:
        return Path(explicit).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "agentyard"


def existing_bin() -> Path:
    binary = agentyard_bin()
    if not binary.exists():
        pytest.fail(
            f"the agentyard binary is not at {binary}: build it with "
            "`cargo build -p agentyard --locked` or set AGENTYARD_BIN",
            pytrace=False,
        )
    return binary


def make_admin_token(store: str) -> str:
    """``agentyard token create --role admin --store STORE``: how an operator makes the first
    admin token, before a server runs on that store. Returns the token (printed alone)."""
    done = subprocess.run(
        [str(existing_bin()), "token", "create", "--role", "admin", "--name", "pytest admin",
         "--store", store],
        capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"agentyard token create failed ({done.returncode}):\n{done.stderr}", pytrace=False)
    token = done.stdout.strip()
    assert token.startswith("ayt_"), "token create printed something else than the token"
    return token


class Server:
    """One ``agentyard serve`` process on ``store`` (the memory store unless given); ``url``
    once it listens. ``log`` is its ``AGENTYARD_LOG`` filter (default: ``$AGENTYARD_LOG``, else
    ``info``); ``listen`` its address (a free port unless given: see :func:`free_port`)."""

    def __init__(
        self, *extra: str, store: str = "memory", log: str | None = None, listen: str = "127.0.0.1:0"
    ) -> None:
        binary = existing_bin()
        self.log = tempfile.NamedTemporaryFile(prefix="agentyard-server-", suffix=".log", delete=False)
        args = [str(binary), "serve", "--store", store, "--listen", listen, *extra]
        env = dict(os.environ, AGENTYARD_LOG=log or os.environ.get("AGENTYARD_LOG", "info"))
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.log, env=env, text=True
        )
        self.url = self._wait_for_address(30.0)

    def _wait_for_address(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("listening on "):
                return line[len("listening on ") :].strip()
        self.stop()
        pytest.fail(f"agentyard serve did not start; its log:\n{self.log_text()}", pytrace=False)

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@dataclass(frozen=True)
class AuthServer:
    """A server run with ``--auth`` on a SQLite store, and the admin token made in that store
    (see :func:`make_admin_token`) before the server started."""

    server: Server
    admin_token: str

    @property
    def url(self) -> str:
        return self.server.url


def free_port() -> int:
    """A port free right now, for a server that must come back on the same address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], timeout: float = 10.0, every: float = 0.05) -> None:
    """Polls ``check`` until it is true; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def unique(prefix: str = "q") -> str:
    """A fresh name (queue, agent, topic) for one test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
