"""The ``cardperso`` command: the only place that parses arguments and prints for people.

Exit codes: 0 ok, 1 data or validation problems, 2 usage, 3 device or transport failure;
128 + the signal number (143 for SIGTERM) when a command that writes files was stopped by a
signal (:func:`stop_on_signal`). Expected errors (:class:`~cardperso.errors.CardPersoError`)
print one clear line, never a traceback; ``CARDPERSO_DEBUG=1`` shows tracebacks for developers.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from cardperso import __version__
from cardperso.errors import CardPersoError

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_DEVICE = 0, 1, 2, 3

#: Signals that stop a command which writes files by unwinding it (see :func:`stop_on_signal`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived. Raised in the main process only, it unwinds the command like
    Ctrl-C does, so that its temporary output files are thrown away; not an ``Exception``, so
    no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


#: Pids of the processes inside a :func:`stop_on_signal` block (its owner).
_stopping: set[int] = set()


def _block_stop_signals() -> None:
    if _stopping:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _unblock_stop_signals() -> None:
    if _stopping:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _default_stop_signals_in_child() -> None:
    """A process forked inside :func:`stop_on_signal` (prep's pool workers) stops on the stop
    signals by the default action. The signals are blocked across the fork and unblocked here,
    after the default action is back: a SIGTERM sent to a worker that has not started yet
    (``multiprocessing.Pool.terminate`` right after a short batch) was caught by the inherited
    Python-level handler, then dropped by the interpreter's after-fork reset, and the pool
    waited for that worker for ever (``prep --workers 2`` hung at the end of the batch)."""
    if _stopping:
        _stopping.clear()
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


os.register_at_fork(
    before=_block_stop_signals,
    after_in_parent=_unblock_stop_signals,
    after_in_child=_default_stop_signals_in_child,
)


@contextlib.contextmanager
def stop_on_signal() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` in this process while the block runs.

    Worker processes forked inside the block get the default action back as they start
    (:func:`_default_stop_signals_in_child`), so a worker stops as it always did.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    _stopping.add(owner)
    try:
        yield
    finally:
        _stopping.discard(owner)
        for sig, old in previous.items():
            signal.signal(sig, old)


def _quiet_stdout() -> None:
    """The reader of our standard output went away (``| head``): stop quietly, like other Unix
    tools. Standard output is pointed at /dev/null so that the interpreter's last flush does not
    fail again on exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test runner's buffer)
        pass


class _Group(click.Group):
    """A click group that turns cardperso errors into one line and a distinct exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Stopped as exc:
            click.echo(
                f"error: stopped by {exc}: no output file was left half-written "
                "(temporary files removed)",
                err=True,
            )
            ctx.exit(128 + exc.signum)
        except BrokenPipeError:
            _quiet_stdout()  # `cardperso … | head`: the reader has all it wanted
            ctx.exit(EXIT_OK)
        except CardPersoError as exc:
            if os.environ.get("CARDPERSO_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a file or directory that is missing, unwritable, full ...
            if os.environ.get("CARDPERSO_DEBUG"):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(EXIT_DATA)


#: Each top-level command and the ``cardperso.cli`` modules that make it, the one that defines it
#: first (in its ``COMMANDS``), then any that add sub-commands to it (``line`` adds ``sim line``).
#: Only these are imported when the command runs: ``cardperso prep`` loads no web stack, registry,
#: PDF fonts or PC/SC. tests/test_cli_lazy.py checks the table against ``commands.MODULES``.
LAZY_COMMANDS: dict[str, tuple[str, ...]] = {
    "keys": ("keys",),
    "sim": ("sim", "line"),
    "readers": ("sim",),
    "prep": ("prep",),
    "validate": ("prep",),
    "perso-file": ("prep",),
    "profile": ("profile",),
    "examples": ("examples",),
    "run": ("line",),
    "line": ("line",),
    "demo": ("line",),
    "bank": ("bank",),
    "registry": ("registry",),
    "db": ("db",),
    "web": ("web",),
    "pki": ("pki",),
}


class _LazyGroup(_Group):
    """The root group: a sub-command's module is imported when that command is looked up. A
    name the table does not know (a module added to ``commands.MODULES`` only, or a typo) and
    the list of commands (``--help``) load every module."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            if cmd_name in LAZY_COMMANDS:
                names = LAZY_COMMANDS[cmd_name]
                modules = [importlib.import_module(f"cardperso.cli.{m}") for m in names]
                for command in getattr(modules[0], "COMMANDS", ()):
                    if command.name == cmd_name:
                        self.add_command(command)
            else:
                _register()
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cardperso")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug traces).")
def cli(verbose: int) -> None:
    """cardperso: batch data preparation and chip encoding for social-security cards."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register() -> None:
    """Attach every sub-command group at once (tests that drive ``cli`` in process; the
    console script loads only the command it runs, through :class:`_LazyGroup`)."""
    from cardperso.cli import commands

    commands.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="cardperso", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
