"""Worker processes forked inside ``stop_on_signal`` (prep's pool workers) stop on SIGTERM and
SIGHUP by the default action, not through the block's Python-level handler.

With the inherited handler, ``multiprocessing.Pool.terminate`` could hang: its SIGTERM reached a
worker just before the worker blocked on the pool's queue lock, the handler (which runs only
between bytecodes) never ran, and the pool waited for that worker for ever (``cardperso prep
--workers 2`` hung at the end of a batch; ``benchmarks/bench_prep.py`` found it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from types import FrameType

from cardperso.cli.main import Stopped, stop_on_signal


def _default_actions() -> tuple[bool, bool]:
    return (
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        signal.getsignal(signal.SIGHUP) == signal.SIG_DFL,
    )


def _custom(signum: int, frame: FrameType | None) -> None:
    pass


def _hup_is_custom() -> bool:
    return signal.getsignal(signal.SIGHUP) is _custom


def test_pool_workers_forked_inside_the_block_take_the_default_action() -> None:
    with stop_on_signal():
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)  # the block's own handler, in this process
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert pool.apply(_default_actions) == (True, True)
            assert pool.map(_apply, range(4)) == [(True, True)] * 4
        assert signal.getsignal(signal.SIGTERM) is handler  # the owner keeps it


def _apply(_: int) -> tuple[bool, bool]:
    return _default_actions()


def test_the_owner_still_stops_with_stopped() -> None:
    with stop_on_signal():
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        try:
            handler(signal.SIGTERM, None)
        except Stopped as exc:
            assert exc.signum == signal.SIGTERM
        else:
            raise AssertionError("the owner's handler did not raise Stopped")


def test_forks_outside_the_block_keep_their_handlers() -> None:
    previous = signal.signal(signal.SIGHUP, _custom)
    try:
        with stop_on_signal():
            pass
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply(_hup_is_custom) is True
    finally:
        signal.signal(signal.SIGHUP, previous)


SHORT_POOLS = """
import multiprocessing, sys
from cardperso.cli.main import stop_on_signal

def work(x):
    return x

with stop_on_signal():
    for i in range(int(sys.argv[1])):
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert pool.map(work, range(4)) == [0, 1, 2, 3]
print("done")
"""


def test_short_pools_inside_the_block_all_end() -> None:
    """The hang itself: a pool whose work ends before its second worker has started terminates
    that worker at once (before the fix, 4 runs of this loop out of 4 hung within 300 pools)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SHORT_POOLS, "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)  # a guard against the hang, not a measurement
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(
            "a pool inside stop_on_signal never ended (a worker missed SIGTERM)"
        ) from None
    assert (proc.returncode, out.strip()) == (0, "done")
