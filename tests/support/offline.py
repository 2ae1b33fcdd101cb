"""The suite's offline guard: nothing in a test may reach beyond this machine."""

from __future__ import annotations

import ipaddress
import socket

import pytest

__all__ = ["NetworkAccessAttempted", "guard_network"]


class NetworkAccessAttempted(AssertionError):
    """Something tried to reach a host off this machine (a hub, a CDN, telemetry, OpenAI)."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local(host):
        raise NetworkAccessAttempted(f"network access to {address!r} attempted during a test")


def _connect(self, address):  # noqa: ANN001
    _guard(address)
    return _real_connect(self, address)


def _connect_ex(self, address):  # noqa: ANN001
    _guard(address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):  # noqa: ANN001
    if host is not None and not _is_local(host.decode() if isinstance(host, bytes) else host):
        raise NetworkAccessAttempted(f"name lookup of {host!r} attempted during a test")
    return _real_getaddrinfo(host, *args, **kwargs)


def guard_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """For one test: any connection or name lookup beyond loopback raises NetworkAccessAttempted."""
    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)
