"""Fixtures: a real agentyard server (see ``_support.Server``), a namespace of its own for
each test, and a client for it; and a server run with ``--auth`` with its first admin token."""

from __future__ import annotations

import os
import uuid
from typing import Callable, Iterator

import pytest

from _support import AuthServer, Server, make_admin_token
from agentyard_client import Client


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()
    os.unlink(s.log.name)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Starts a server with extra flags (e.g. ``--max-queue-depth 2``) and ``Server``'s keyword
    arguments (``store=``, ``listen=``), stopped after the test."""
    started: list[Server] = []

    def start(*extra: str, **options: str) -> Server:
        s = Server(*extra, **options)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
        os.unlink(s.log.name)


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for each test, so tests do not see each other's tasks."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(server: Server, namespace: str) -> Iterator[Client]:
    with Client(server.url, namespace=namespace) as c:
        yield c



@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    store = f"sqlite://{tmp_path_factory.mktemp('auth') / 'yard.db'}"
    token = make_admin_token(store)
    s = Server("--auth", store=store)
    yield AuthServer(s, token)
    s.stop()
    os.unlink(s.log.name)
