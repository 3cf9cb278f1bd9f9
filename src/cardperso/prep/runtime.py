"""Process settings for batch preparation's hot loop (CPython and glibc, not the data).

Every chunk of a batch allocates the same few MB of numpy arrays and tens of thousands of
short-lived Python objects. Two defaults of the runtime make that cost more than the work:
glibc returns every array above 128 kB to the kernel when it is freed (the next chunk's pages
are faulted in and zeroed again), and the cyclic garbage collector walks the young objects
every 700 allocations although a chunk's objects die young, freed by their reference counts.
:func:`keep_freed_memory` and :func:`fewer_collections` change those two settings for a batch;
the output does not depend on them (docs/prep.md, "Performance").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Iterator

__all__ = ["fewer_collections", "keep_freed_memory"]

#: glibc's ``mallopt`` parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep the memory a chunk frees for the next chunk: every chunk
    allocates the same few MB of arrays (the record grid, its mask, the keystream, the frames),
    and by default each one above 128 kB is a fresh ``mmap`` whose pages the kernel faults in
    and zeroes, then unmaps at ``free`` (several µs of CPU per card, docs/prep.md). Arrays up to
    256 MB now come from the heap and the heap is trimmed only above 512 MB free, so the
    process's RSS stays at its working set's peak. Returns False where there is no glibc
    (nothing changes there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 256 << 20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 512 << 20)
    )


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while chunks are prepared (the forked
    workers inherit it): a chunk allocates tens of thousands of short-lived objects, none in
    cycles, and each collection of the youngest generation walks them (~0.6 µs of CPU per
    card with the default threshold of 700 allocations, docs/prep.md). The previous
    thresholds come back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
