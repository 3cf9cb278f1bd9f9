"""Forked workers hand their framed records over in segment files (prep/pipeline.py ``_work``,
``PersoWriter.add_segment``): the file stays byte-identical to one process's, duplicates that
fall in a worker's chunk are still dropped (first occurrence wins), every line is prepared or
rejected once, and no segment is left behind, on success or on failure."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep import container
from cardperso.prep.container import PersoWriter, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from profile_variants import write_without_oda


def _batch_with_duplicates(tmp: Path) -> int:
    """120 records, then copies of records 3, 50 and 97 (duplicates that land in later
    chunks, which the forked worker prepares) and a copy of the last one."""
    make_batch(tmp / "batch.csv", 120, photos=4)
    lines = (tmp / "batch.csv").read_bytes().splitlines(keepends=True)
    lines += [lines[3], lines[50], lines[97], lines[-1]]
    (tmp / "batch.csv").write_bytes(b"".join(lines))
    return len(lines) - 1


def _prep(tmp: Path, store: SoftwareKeyStore, out: str, **kw: Any) -> Any:
    profile = load_profile(write_without_oda(tmp / "ssc3-pboc.yaml"))
    opts = PrepOptions(batch_id="B1", created=1767225600, **kw)
    return prepare(
        tmp / "batch.csv",
        profile,
        store,
        lambda: SoftwareKeyStore.load(store.location.removeprefix("file:")),
        tmp / out,
        tmp / f"{out}.rejects.csv",
        opts,
    )


def test_segments_give_the_same_file_with_duplicates_dropped(
    tmp_path: Path, sample_keystore: SoftwareKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _batch_with_duplicates(tmp_path)
    one = _prep(tmp_path, sample_keystore, "one.cppf", chunk_size=5)
    copied: list[int] = []
    add = PersoWriter.add_segment

    def counting(self: PersoWriter, path: str, ranges: Any, macs: bytes, count: int) -> None:
        copied.append(count)
        add(self, path, ranges, macs, count)

    monkeypatch.setattr(PersoWriter, "add_segment", counting)
    two = _prep(tmp_path, sample_keystore, "two.cppf", chunk_size=5, workers=2)
    assert copied and sum(copied) < two.prepared  # the worker's chunks came as segments
    assert (tmp_path / "two.cppf").read_bytes() == (tmp_path / "one.cppf").read_bytes()
    rejects = (tmp_path / "two.cppf.rejects.csv").read_text("utf-8")
    assert rejects == (tmp_path / "one.cppf.rejects.csv").read_text("utf-8")
    assert (one.read, one.prepared, one.rejected) == (two.read, two.prepared, two.rejected)
    assert (two.read, two.prepared, two.rejected) == (records, 120, 4)
    for first, dup in ((4, 122), (51, 123), (98, 124), (121, 125)):  # file lines (header = 1)
        assert f"{dup},ssn,duplicate of line {first}" in rejects
    assert verify(tmp_path / "two.cppf", sample_keystore).records == 120
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failure_mid_batch_leaves_no_segment(
    tmp_path: Path, sample_keystore: SoftwareKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _batch_with_duplicates(tmp_path)

    def full_disk(self: PersoWriter, *args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(container.PersoWriter, "add_segment", full_disk)
    with pytest.raises(OSError):
        _prep(tmp_path, sample_keystore, "out.cppf", chunk_size=5, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv", "photos", "ssc3-pboc.yaml"]


def test_adjacent_ranges_are_one_copy() -> None:
    ranges = [(0, 10), (10, 30), (50, 60), (199, 200)]
    assert list(container._merged(ranges)) == [(0, 30), (50, 60), (199, 200)]
    assert list(container._merged([])) == []


def test_without_copy_file_range_the_bytes_are_copied_by_hand(
    tmp_path: Path, sample_keystore: SoftwareKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system or kernel that refuses copy_file_range (EXDEV, ENOSYS): the same file."""
    _batch_with_duplicates(tmp_path)
    _prep(tmp_path, sample_keystore, "one.cppf", chunk_size=5)

    def refuse(*args: Any) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    _prep(tmp_path, sample_keystore, "two.cppf", chunk_size=5, workers=2)
    assert (tmp_path / "two.cppf").read_bytes() == (tmp_path / "one.cppf").read_bytes()


def test_a_segment_shorter_than_its_ranges_is_an_error(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    _batch_with_duplicates(tmp_path)
    _prep(tmp_path, sample_keystore, "one.cppf", chunk_size=5)
    with open(tmp_path / "one.cppf", "rb") as fh:
        header, _raw = container.read_header(fh)
    seg = tmp_path / "seg"
    seg.write_bytes(bytes(100))
    writer = PersoWriter(tmp_path / "w.cppf", header, bytes(32))
    try:
        with pytest.raises(OSError, match="ends before byte 150"):
            writer.add_segment(str(seg), [(0, 50), (60, 150)], bytes(32), 2)
    finally:
        writer.abort()
    assert not (tmp_path / "w.cppf").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_output_is_handed_to_the_kernel_as_it_grows(
    tmp_path: Path, sample_keystore: SoftwareKeyStore, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The personalization file's writeback is started every WRITE_BEHIND_STEP bytes, from
    the main process's own frames (1 worker) and from the copied segments (2 workers), so the
    commit's fsync does not write the whole file at the end; the bytes are the same."""
    from cardperso import outputs

    _batch_with_duplicates(tmp_path)
    _prep(tmp_path, sample_keystore, "plain.cppf", chunk_size=5, workers=workers)
    monkeypatch.setattr(outputs, "WRITE_BEHIND_STEP", 16 << 10)
    taken: list[int] = []
    real = outputs.AtomicFile.write_behind

    def spy(self: outputs.AtomicFile, end: int) -> bool:
        took = real(self, end)
        if took:
            taken.append(end)
        return took

    monkeypatch.setattr(outputs.AtomicFile, "write_behind", spy)
    monkeypatch.setattr(PersoWriter, "FLUSH_BYTES", 4 << 10)  # write out every chunk
    _prep(tmp_path, sample_keystore, "behind.cppf", chunk_size=5, workers=workers)
    size = (tmp_path / "behind.cppf").stat().st_size
    assert len(taken) >= 5 and taken == sorted(taken) and taken[-1] <= size
    assert all(b - a >= 16 << 10 for a, b in zip([0, *taken], taken))
    assert (tmp_path / "behind.cppf").read_bytes() == (tmp_path / "plain.cppf").read_bytes()
