"""Importing the library, the loaders or the CLI has no side effects; unstructured's offline
set-up happens when the first file that needs it is parsed, not before."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.paths import ROOT as REPO

# A fresh interpreter with sockets refused, whose environment has none of the variables the old
# import-time set-up wrote, so a module that sets one at import shows up in the diff.
_PRELUDE = textwrap.dedent(
    """
    import json, os, socket, sys

    def refuse(*args, **kwargs):
        raise OSError("network blocked by test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.getaddrinfo = refuse

    def changed(before):
        after = dict(os.environ)
        return {k: [before.get(k), after.get(k)] for k in before.keys() | after.keys()
                if before.get(k) != after.get(k)}
    """
)


def _run(script: str, tmp_path: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(script)], capture_output=True, text=True,
        timeout=120, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_tokens_loaders_and_the_cli_leaves_os_environ_unchanged(tmp_path: Path) -> None:
    report = _run(
        """
        before = dict(os.environ)
        import rag.tokens, ingest.loaders, ingest.cli
        print(json.dumps({
            "changed": changed(before),
            "imported": sorted({m.split(".")[0] for m in sys.modules} & {"unstructured", "spacy"}),
        }))
        """,
        tmp_path,
    )
    assert report == {"changed": {}, "imported": []}


@pytest.mark.slow
def test_the_first_parse_sets_the_telemetry_opt_outs_before_unstructured_loads(tmp_path: Path) -> None:
    report = _run(
        """
        import builtins
        from ingest.loaders import load_bytes

        seen_at_import = {}
        real_import = builtins.__import__

        def spy(name, *args, **kwargs):
            if name.split(".")[0] == "unstructured" and not seen_at_import:
                seen_at_import.update({k: os.environ.get(k) for k in
                                       ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS",
                                        "UNSTRUCTURED_DISABLE_NOTICE")})
            return real_import(name, *args, **kwargs)

        builtins.__import__ = spy
        before = dict(os.environ)
        load_bytes("a.jsonl", b'{"_id": "1", "text": "No unstructured needed."}')
        after_jsonl = "unstructured" in sys.modules
        [doc] = load_bytes("a.md", b"# Title\\n\\nSome prose.\\n")
        print(json.dumps({
            "after_jsonl": after_jsonl,
            "after_md": "unstructured" in sys.modules,
            "seen_at_import": seen_at_import,
            "changed": changed(before),
            "kinds": [e.kind for e in doc.elements],
        }))
        """,
        tmp_path,
    )
    opt_outs = {"DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "true", "UNSTRUCTURED_DISABLE_NOTICE": "1"}
    assert report == {
        "after_jsonl": False,
        "after_md": True,
        "seen_at_import": opt_outs,
        "changed": {name: [None, value] for name, value in opt_outs.items()},
        "kinds": ["Title", "NarrativeText"],
    }
