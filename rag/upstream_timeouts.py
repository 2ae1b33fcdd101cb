"""Timeouts shared by every call to an OpenAI-compatible upstream: the SDK's clients
(`rag.openai_client`) and the HTTP relay (`api.passthrough`).

A module of its own so the relay, built with every app, does not import the OpenAI SDK: its
pydantic types take 1.5 s to import on a loaded machine, in front of every server start. The SDK
loads when a client is first made.
"""

from __future__ import annotations

__all__ = ["CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = 5.0
"""A reachable server accepts a connection at once; waiting longer only delays the 502."""
