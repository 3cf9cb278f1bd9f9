"""``cardperso bank verify --capk FILE`` and ``bank qpboc-purchase --capk FILE``: print the
terminal kernel's steps (bank/kernel.py); exit 1 naming the failed ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cardperso.bank import kernel
from cardperso.bank.host import IssuerHost
from cardperso.bank.qpboc import ContactlessResult
from cardperso.errors import KeyStoreError, SecurityError, UsageError
from cardperso.keystore.software import read_small_text

__all__ = ["load_capk_file", "report_fdda", "run_kernel"]


def load_capk_file(capk_file: Path) -> dict[tuple[bytes, int], Any]:
    """The CA public keys of ``capk_file`` (read before any card is touched)."""
    try:
        text = read_small_text(capk_file, 1 << 20, f"CAPK file {capk_file}")
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None
    return kernel.load_capks(text, f"CAPK file {capk_file}")


def _print(steps: tuple[kernel.Step, ...], pan_masked: str) -> None:
    for step in steps:
        click.echo(step.line())
    failed = [s.name for s in steps if not s.ok]
    if failed:
        raise SecurityError(f"{pan_masked}: {len(failed)} check(s) failed: {', '.join(failed)}")


def report_fdda(capks: dict[tuple[bytes, int], Any], result: ContactlessResult) -> None:
    """The kernel's checks of a qPBOC purchase (certificates, fDDA), one line each."""
    _print(kernel.check_fdda(capks, result), result.pan_masked)


def terminal_caps(methods: str) -> kernel.TerminalCaps:
    """``sda,dda,cda`` (any of them, comma-separated; empty: none) as terminal capabilities."""
    chosen = {m.strip().lower() for m in methods.split(",") if m.strip()}
    unknown = sorted(chosen - {"sda", "dda", "cda"})
    if unknown:
        raise UsageError(f"--oda: unknown method(s) {', '.join(unknown)} (sda, dda, cda)")
    return kernel.TerminalCaps(sda="sda" in chosen, dda="dda" in chosen, cda="cda" in chosen)


def run_kernel(
    reader: str,
    capk_file: Path,
    host: IssuerHost,
    prefer: str,
    on_reader: Callable[..., Any],
    methods: str = "sda,dda,cda",
) -> None:
    """Run the kernel on the card in ``reader``; one line per step; exit 1 when one failed."""
    caps = terminal_caps(methods)
    capks = load_capk_file(capk_file)
    report: kernel.KernelReport = on_reader(
        reader, kernel.verify_kernel(capks, host, prefer=prefer, caps=caps)
    )
    _print(report.steps, report.pan_masked)
    click.echo(f"OK {report.pan_masked} AID {report.aid.hex().upper()} via {report.via}: "
               f"{len(report.steps)} checks passed")  # fmt: skip
