"""``cardperso bank verify --capk FILE``: print the terminal kernel's steps (bank/kernel.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cardperso.bank import kernel
from cardperso.bank.host import IssuerHost
from cardperso.errors import KeyStoreError, SecurityError, UsageError
from cardperso.keystore.software import read_small_text

__all__ = ["run_kernel"]


def run_kernel(
    reader: str, capk_file: Path, host: IssuerHost, prefer: str, on_reader: Callable[..., Any]
) -> None:
    """Run the kernel on the card in ``reader``; one line per step; exit 1 when one failed."""
    try:
        text = read_small_text(capk_file, 1 << 20, f"CAPK file {capk_file}")
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None
    capks = kernel.load_capks(text, f"CAPK file {capk_file}")
    report: kernel.KernelReport = on_reader(
        reader, kernel.verify_kernel(capks, host, prefer=prefer)
    )
    for step in report.steps:
        click.echo(step.line())
    failed = [s.name for s in report.steps if not s.ok]
    if failed:
        raise SecurityError(
            f"{report.pan_masked}: {len(failed)} check(s) failed: {', '.join(failed)}"
        )
    click.echo(f"OK {report.pan_masked} AID {report.aid.hex().upper()} via {report.via}: "
               f"{len(report.steps)} checks passed")  # fmt: skip
