"""Output files: written atomically, private by default, and never over an input.

Every file cardperso writes for people or for the next stage (personalization files, rejects,
results, key stores, registry exports, return files, card images) goes through this module:

* :func:`atomic_output` opens a temporary file in the target's directory (mode 0600 unless told
  otherwise), and only when the ``with`` block ends without an exception does it ``fsync`` the
  file, ``os.replace`` it onto the final name and ``fsync`` the directory. A crash, a signal or
  an error leaves the previous file (or none) under the final name, never a partial one.
* :func:`check_paths` refuses a command whose output is one of its inputs (the batch, the key
  store, the profile) or another of its own outputs, comparing resolved paths and, where both
  files exist, ``os.path.samefile`` (hard links, symlinks, ``./x`` against ``x``).

Personal data: files default to 0600. A caller that writes a file meant to be shared passes
``mode=0o644`` explicitly.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal, overload

from cardperso.errors import UsageError

#: The mode of a file cardperso writes unless a caller asks otherwise: owner read/write only.
PRIVATE = 0o600


#: ``sync_file_range(2)``'s flag that starts the writeback of a range's dirty pages without
#: waiting for it (``SYNC_FILE_RANGE_WRITE``, linux/fs.h).
_SYNC_FILE_RANGE_WRITE = 2
#: How much a large output grows between two :meth:`AtomicFile.write_behind` kicks.
WRITE_BEHIND_STEP = 64 << 20


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` from the C library already loaded, or None elsewhere."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows it)."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class AtomicFile:
    """A temporary file beside ``path`` that becomes ``path`` on :meth:`commit` only.

    For writers with an open/close life (a streaming personalization file, a rejects file): call
    :meth:`commit` when everything was written, :meth:`abort` on any failure (idempotent; after
    a commit it does nothing). A process killed before ``commit`` leaves only a hidden
    ``.NAME.*.part`` file, never a partial file under the final name.
    """

    def __init__(self, path: Path | str, *, binary: bool = False, mode: int = PRIVATE) -> None:
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.stat(self.path).st_mode):  # /dev/null, a FIFO: never replace
                raise UsageError(f"{self.path} is not a regular file: refusing to replace it")
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        self.tmp = Path(tmp)
        try:
            os.fchmod(fd, mode)
            self.fh: IO[Any] = (
                os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
            )
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        self.done = False
        self._behind = 0  # the offset up to which the writeback was started

    def write_behind(self, end: int) -> bool:
        """Start the writeback of the bytes before *end* (the file's size so far, flushed to
        the descriptor) once :data:`WRITE_BEHIND_STEP` more have come, without waiting for it.
        A large file (a 1.5 GB personalization file) is then mostly on disk when
        :meth:`commit` fsyncs it, instead of all of it being written then while the batch's
        processes sit idle (the kernel starts writing only when a tenth of the memory is
        dirty). Only a hint: where there is no ``sync_file_range`` nothing changes. Returns
        whether the kernel took a range (False below the step, without the call, or when the
        call failed)."""
        if end - self._behind < WRITE_BEHIND_STEP:
            return False
        start, self._behind = self._behind, end
        fn = _sync_file_range()
        if fn is None:
            return False
        return fn(self.fh.fileno(), start, end - start, _SYNC_FILE_RANGE_WRITE) == 0

    def commit(self) -> None:
        """fsync the data, rename it onto the final name, fsync the directory."""
        if self.done:
            return
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        fsync_directory(self.path.parent)

    def abort(self) -> None:
        """Throw the temporary file away; the final name keeps what it had."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


@overload
def atomic_output(
    path: Path | str, *, binary: Literal[True], mode: int = PRIVATE
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
@overload
def atomic_output(
    path: Path | str, *, binary: Literal[False] = ..., mode: int = PRIVATE
) -> contextlib.AbstractContextManager[IO[str]]: ...
def atomic_output(
    path: Path | str, *, binary: bool = False, mode: int = PRIVATE
) -> contextlib.AbstractContextManager[IO[Any]]:
    """A file object whose content appears under ``path`` only if the block succeeds.

    Text mode writes UTF-8 with ``newline=""`` (the csv module's convention).
    """
    return _atomic(Path(path), binary, mode)


@contextlib.contextmanager
def _atomic(target: Path, binary: bool, mode: int) -> Iterator[IO[Any]]:
    out = AtomicFile(target, binary=binary, mode=mode)
    try:
        yield out.fh
    except BaseException:
        out.abort()
        raise
    out.commit()


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, rename)."""
    with atomic_output(path, binary=True, mode=mode) as fh:
        fh.write(data)


def atomic_write_text(path: Path | str, text: str, *, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically (temporary file, fsync, rename)."""
    with atomic_output(path, mode=mode) as fh:
        fh.write(text)


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(
    outputs: Mapping[str, Path | str | None],
    inputs: Mapping[str, Path | str | None] | None = None,
) -> None:
    """Refuse outputs that are inputs or each other; keys are the options people typed.

    ``outputs`` and ``inputs`` map a role (``"--out"``, ``"INPUT"``, ``"--keys"``) to a path
    (``None`` for an option not given). Raises :class:`UsageError` naming both roles.
    """
    outs = [(role, Path(p)) for role, p in outputs.items() if p is not None]
    ins = [(role, Path(p)) for role, p in (inputs or {}).items() if p is not None]
    for i, (role, out) in enumerate(outs):
        for in_role, src in ins:
            if _same(out, src):
                raise UsageError(f"{role} is the same file as {in_role}: refusing to overwrite it")
        for other_role, other in outs[i + 1 :]:
            if _same(out, other):
                raise UsageError(f"{role} and {other_role} are the same file")


def check_output_dirs(outputs: Iterable[tuple[str, Path | str | None]]) -> None:
    """Refuse an output whose directory does not exist or that names a directory."""
    for role, p in outputs:
        if p is None:
            continue
        path = Path(p)
        if path.is_dir():
            raise UsageError(f"{role} is a directory, not a file")
        if not path.parent.is_dir():
            raise UsageError(f"{role}: directory {path.parent} does not exist")
