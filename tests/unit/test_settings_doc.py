"""The README's settings table and `Settings` cannot drift apart.

Each `Settings` field's docstring starts with the variable that sets it (`RAG_HOME: ...`); the
README lists the same variables with the same defaults, plus the command line's own (`envvar=`).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import click
from support.paths import ROOT

from ingest.cli import main
from rag import config
from rag.config import Settings


def readme_rows() -> dict[str, str]:
    """variable -> its default cell, from the README's "## Settings" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1]) or [cells[1]]
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) == len(names) else cells[1]
    return rows


def field_variables() -> dict[str, str]:
    """variable -> Settings field, from the docstring under each field in rag/config.py."""
    tree = ast.parse(Path(config.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    out: dict[str, str] = {}
    body = cls.body
    for node, after in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            m = re.match(r"([A-Z_]+):", str(after.value.value))
            assert m, f"the docstring of Settings.{node.target.id} must start with its variable"
            out[m.group(1)] = node.target.id
    return out


class Recording(dict[str, str]):
    """An empty environment that notes every variable asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None):  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def cli_variables(group: click.Group = main) -> Iterator[str]:
    for command in group.commands.values():
        if isinstance(command, click.Group):
            yield from cli_variables(command)
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                yield envvar


def test_every_setting_is_in_the_readme_and_nothing_else() -> None:
    env = Recording()
    Settings.from_env(env)
    fields = field_variables()
    assert env.asked == set(fields), "from_env reads variables the field docstrings do not name, or the reverse"
    assert set(readme_rows()) == set(fields) | set(cli_variables())


def test_readme_defaults_are_the_real_defaults() -> None:
    rows = readme_rows()
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for variable, name in field_variables().items():
        default = defaults[name]
        if default is dataclasses.MISSING:  # computed when the settings are made: the README describes it
            assert rows[variable].startswith("("), variable
        elif default in (None, ()):
            assert rows[variable] in ("unset",) or rows[variable].startswith(("(", "OpenAI")), variable
        elif isinstance(default, Path):
            assert Path(rows[variable]) == default, variable
        elif isinstance(default, float):
            assert float(rows[variable]) == default, variable
        else:
            assert rows[variable] == str(default), variable
