"""Registry of CLI sub-command groups: each feature module contributes one ``click`` group."""

from __future__ import annotations

import importlib

import click

#: Modules under ``cardperso.cli`` that define ``group`` (a click command or group).
MODULES: tuple[str, ...] = (
    "keys",
    "sim",
    "prep",
    "profile",
    "examples",
    "line",
    "bank",
    "registry",
    "db",
    "web",
    "pki",
)


def register(root: click.Group) -> None:
    for name in MODULES:
        module = importlib.import_module(f"cardperso.cli.{name}")
        for command in getattr(module, "COMMANDS", ()):
            if command.name not in root.commands:
                root.add_command(command)
