"""The console script imports only the command it runs (cli/main.py ``LAZY_COMMANDS``).

The lazy table must name every command the modules of ``cli/commands.py`` register, each from
the module that defines it; and ``cardperso prep`` must not load the web stack, the registry,
the PDF fonts or PC/SC (they made the process start at ~160 MB).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import click

from cardperso.cli import commands
from cardperso.cli.main import LAZY_COMMANDS

_PROBE = """
import json, sys
from cardperso.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _run(*argv: str) -> tuple[object, set[str], str]:
    """Run the console script's ``main`` in a fresh interpreter: exit code, modules, stdout."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(run.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), run.stdout


def test_lazy_table_matches_the_registered_commands() -> None:
    eager = click.Group()
    commands.register(eager)
    assert set(LAZY_COMMANDS) == set(eager.commands)
    for name, modules in LAZY_COMMANDS.items():
        assert set(modules) <= set(commands.MODULES)
        first = importlib.import_module(f"cardperso.cli.{modules[0]}")
        assert eager.commands[name] in list(first.COMMANDS), name


def test_sub_commands_added_by_other_modules_are_reachable_lazily() -> None:
    """``sim line`` is defined in cli/line.py on the group of cli/sim.py: a fresh process that
    runs ``cardperso sim --help`` must list it (and the eager registry agrees)."""
    eager = click.Group()
    commands.register(eager)
    sim = eager.commands["sim"]
    assert isinstance(sim, click.Group)
    code, modules, out = _run("sim", "--help")
    assert code == 0 and "cardperso.cli.line" in modules
    for sub in sim.commands:
        assert f"  {sub} " in out, sub


def test_prep_loads_no_web_registry_pdf_or_pcsc() -> None:
    code, modules, _ = _run("prep", "--help")
    assert code == 0
    assert "cardperso.cli.prep" in modules
    for absent in (
        "cardperso.cli.web",
        "cardperso.web",
        "cardperso.cli.registry",
        "cardperso.registry",
        "cardperso.cli.line",
        "cardperso.line",
        "cardperso.cli.bank",
        "starlette",
        "uvicorn",
        "fpdf",
        "smartcard",
    ):
        assert absent not in modules, absent


def test_root_help_lists_every_command() -> None:
    code, modules, _ = _run("--help")
    assert code == 0
    assert "cardperso.cli.web" in modules  # the short help of each command is its own


def test_an_unknown_command_is_a_usage_error_after_loading_them_all() -> None:
    code, modules, _ = _run("no-such-command")
    assert code == 2
    assert "cardperso.cli.web" in modules  # a name outside the table loads every module


def test_a_command_missing_from_the_table_still_runs(monkeypatch: Any) -> None:
    """A module added to commands.MODULES but not to LAZY_COMMANDS: its command is still found
    (through the full registration), and the table test above says what to add."""
    from click.testing import CliRunner

    from cardperso.cli import main as cli_main

    monkeypatch.delitem(cli_main.LAZY_COMMANDS, "db")
    monkeypatch.setattr(cli_main.cli, "commands", {})
    result = CliRunner().invoke(cli_main.cli, ["db", "--help"])
    assert result.exit_code == 0, result.output
    assert "The database shared" in result.output
