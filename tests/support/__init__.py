"""Helpers shared by every tier of the suite (unit, integration, e2e), each written once.

pytest puts `tests/` on `sys.path` (`pythonpath` in pyproject.toml), so a test in any tier
imports them as `support.<module>`. The fixtures built on them live in `tests/conftest.py`.
"""
