"""Process settings of batch preparation (cardperso.prep.runtime): glibc's allocator keeps
freed arrays, the garbage collector runs less often during a batch and is set back after it."""

from __future__ import annotations

import gc
import platform

import pytest

from cardperso.prep.runtime import fewer_collections, keep_freed_memory


def test_fewer_collections_raises_the_threshold_and_sets_it_back() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= 10 * before[0]
    assert gc.get_threshold() == before


def test_fewer_collections_sets_it_back_after_a_failure() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("stop")
    assert gc.get_threshold() == before


def test_keep_freed_memory_takes_effect_under_glibc() -> None:
    # mallopt returns 1 on success; elsewhere (musl, macOS) the function says it did nothing
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
