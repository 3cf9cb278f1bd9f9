"""Process settings of batch preparation (cardperso.prep.runtime): during a batch glibc's
allocator keeps freed arrays and the garbage collector runs less often; both are set back
after it."""

from __future__ import annotations

import gc
import platform

import pytest

from cardperso.prep.runtime import GC_THRESHOLD, batch_settings, keep_freed_memory


def test_batch_settings_raise_the_threshold_and_set_it_back() -> None:
    before = gc.get_threshold()
    with batch_settings():
        assert gc.get_threshold()[0] == GC_THRESHOLD > before[0]
    assert gc.get_threshold() == before


def test_batch_settings_are_set_back_after_a_failure() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), batch_settings():
        raise RuntimeError("stop")
    assert gc.get_threshold() == before


def test_keep_freed_memory_takes_effect_under_glibc() -> None:
    # mallopt returns 1 on success; elsewhere (musl, macOS) the function says it did nothing
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
