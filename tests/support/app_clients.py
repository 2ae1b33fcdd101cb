"""The app opened in process as often as a test needs, each time with its environment, and every
one closed when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from litestar.testing import TestClient

from api.app import create_app
from rag.config import Settings


@contextmanager
def app_opener(monkeypatch: pytest.MonkeyPatch, **base_env: str) -> Iterator[Callable[..., TestClient]]:
    """`open_client(**env)`: a client of a new app whose settings are read after `base_env` and
    `env` are set (unset with None) in the environment."""
    clients: list[TestClient] = []

    def open_client(**env: str | None) -> TestClient:
        for name, value in {**base_env, **env}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        client = TestClient(app=create_app(Settings.from_env(), warm_up=False))
        clients.append(client.__enter__())
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            client.__exit__(None, None, None)
