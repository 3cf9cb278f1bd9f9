"""Process settings for batch preparation's hot loop (CPython and glibc, not the data).

Every chunk of a batch allocates the same few MB of numpy arrays and tens of thousands of
short-lived Python objects. Two defaults of the runtime make that cost more than the work:
glibc returns every array above 128 kB to the kernel when it is freed (the next chunk's pages
are faulted in and zeroed again), and the cyclic garbage collector walks the young objects
every 700 allocations although a chunk's objects die young, freed by their reference counts.
:func:`batch_settings` changes both for the time of a batch and sets them back after it (a
long-lived process, the line or the web console, gets its memory back); the output does not
depend on them (docs/prep.md, "Performance").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
from collections.abc import Callable, Iterator

__all__ = ["batch_settings", "keep_freed_memory"]

#: glibc's ``mallopt`` parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, and the
#: default of both (128 kB).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_DEFAULT_THRESHOLD = 128 * 1024
#: The youngest generation's collection threshold during a batch (CPython's default: 700).
GC_THRESHOLD = 50_000


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library already loaded in this process (``dlopen(NULL)``), if it has glibc's
    ``mallopt`` and ``malloc_trim``. Not :func:`ctypes.util.find_library`: that runs
    ``ldconfig`` in a child process, a fork of the whole batch's memory at the end of a run
    (the benchmark's sum of RSS saw two 150 MB processes at 1M records)."""
    try:
        lib = ctypes.CDLL(None)
        lib.mallopt  # noqa: B018 - glibc has both
        lib.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return lib


def _mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    lib = _libc()
    if lib is None:
        return False
    set_: Callable[[int, int], int] = lib.mallopt
    return bool(set_(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        set_(_M_TRIM_THRESHOLD, trim_threshold)
    )


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep the memory a chunk frees for the next chunk: every chunk
    allocates the same few MB of arrays (the record grid, its mask, the keystream, the frames),
    and by default each one above 128 kB is a fresh ``mmap`` whose pages the kernel faults in
    and zeroes, then unmaps at ``free`` (several µs of CPU per card, docs/prep.md). Arrays up to
    256 MB now come from the heap and the heap is trimmed only above 512 MB free, so the
    process's RSS stays at its working set's peak. Returns False where there is no glibc
    (nothing changes there)."""
    return _mallopt(256 << 20, 512 << 20)


def _give_memory_back() -> None:
    """glibc's default thresholds again, and the free heap returned to the kernel."""
    if _mallopt(_DEFAULT_THRESHOLD, _DEFAULT_THRESHOLD):
        lib = _libc()
        assert lib is not None
        lib.malloc_trim(0)


@contextlib.contextmanager
def batch_settings() -> Iterator[None]:
    """For the time of a batch (forked workers inherit it): glibc keeps freed arrays
    (:func:`keep_freed_memory`) and the garbage collector's youngest generation is collected
    every :data:`GC_THRESHOLD` allocations (~0.6 µs of CPU per card with the default 700,
    docs/prep.md). Afterwards the collector's thresholds are the previous ones and the
    allocator has glibc's default thresholds, its free heap trimmed."""
    before = gc.get_threshold()
    kept = keep_freed_memory()
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if kept:
            _give_memory_back()
