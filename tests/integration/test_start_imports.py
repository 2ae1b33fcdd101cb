"""What a server imports before it can answer (issue #9: ready within 10 s at 1M chunks).

The OpenAI SDK's types took 1.5 s to import on a loaded machine, in front of every start, for
routes that only need it once an upstream is called: building the app must not import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_app_leaves_the_openai_sdk_unimported(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from api.app import create_app
        create_app()
        print(sorted(m for m in sys.modules if m == "openai" or m.startswith("openai.")))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))}
    env.update(RAG_HOME=str(tmp_path), PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
