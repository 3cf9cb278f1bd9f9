"""``perso-file verify`` in two processes (prep/verify_split.py): a good file gives the same
result as the one-process check without it; a file with a tampered record in either half, two
records swapped across the seam, or a cut file gets the one-process check's exact error (the
first bad record named by number, input line and offset)."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import pytest

from cardperso.errors import CardPersoError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep import container as ct
from cardperso.prep import verify_split
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from profile_variants import write_without_oda


@pytest.fixture
def good(tmp_path: Path, sample_keystore: SoftwareKeyStore) -> Path:
    make_batch(tmp_path / "batch.csv", 60, photos=3)
    profile = load_profile(write_without_oda(tmp_path / "ssc3-pboc.yaml"))
    prepare(
        tmp_path / "batch.csv",
        profile,
        sample_keystore,
        lambda: sample_keystore,
        tmp_path / "good.cppf",
        tmp_path / "rejects.csv",
        PrepOptions(batch_id="B1", created=1767225600),
    )
    return tmp_path / "good.cppf"


@pytest.fixture(autouse=True)
def _split_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split even these small files, and drop the checked pages every page (as a 1M file does
    every 8 MB), so that the release of the mapping runs too."""
    monkeypatch.setattr(verify_split, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(verify_split, "_RELEASE", mmap.PAGESIZE)


def _frames(path: Path) -> list[tuple[int, int]]:
    """(offset, total length) of each framed record."""
    with open(path, "rb") as fh:
        _header, raw = ct.read_header(fh)
    data = path.read_bytes()
    off, out = len(raw), []
    while data[off : off + 4] != b"CPPE":
        length, _line = ct._FRAME.unpack_from(data, off)
        out.append((off, 24 + length))
        off += 24 + length
    return out


def test_a_good_file_is_checked_in_two_halves(
    good: Path, sample_keystore: SoftwareKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = ct.verify(good, sample_keystore)
    assert want.records == 60

    def no_fallback(*args: Any) -> Any:
        raise AssertionError("the one-process check ran")

    monkeypatch.setattr(ct, "verify", no_fallback)
    ct._VERIFIED.clear()
    got = verify_split.verify(good, sample_keystore)
    assert (got.header, got.records, got.size) == (want.header, want.records, want.size)
    assert len(list(ct.iter_records(good, None))) == 60  # registered as verified, like verify


def _error(path: Path, store: SoftwareKeyStore, split: bool) -> str:
    with pytest.raises(CardPersoError) as info:
        if split:
            verify_split.verify(path, store)
        else:
            ct.verify(path, store)
    return f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize(
    ("base", "delta"),
    [
        ("start", 0),
        ("start", 17),
        ("seam", -1),
        ("seam", 0),
        ("seam", 1),
        ("start", 45),
        ("start", 59),
    ],
)
def test_a_tampered_record_in_either_half_is_named_exactly(
    good: Path, sample_keystore: SoftwareKeyStore, base: str, delta: int
) -> None:
    """Records 0, 17, 45 and 59, the last one before the seam, the first after it, the next."""
    index = delta + (_seam(good) if base == "seam" else 0)
    data = bytearray(good.read_bytes())
    off, size = _frames(good)[index]
    data[off + size // 2] ^= 0x01  # a byte of the sealed body
    bad = good.with_name("bad.cppf")
    bad.write_bytes(bytes(data))
    want = _error(bad, sample_keystore, split=False)
    assert f"record {index} " in want and "MAC does not verify" in want
    assert _error(bad, sample_keystore, split=True) == want


def _seam(path: Path) -> int:
    """The index of the first record the forked process checks."""
    frames = _frames(path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        split = verify_split._split_point(mm, frames[0][0], len(mm) - 40)
    return [off for off, _size in frames].index(split)


def test_records_swapped_across_the_seam(good: Path, sample_keystore: SoftwareKeyStore) -> None:
    data = good.read_bytes()
    frames = _frames(good)
    seam = _seam(good)
    assert 20 < seam < 40
    (a, la), (b, lb) = frames[seam - 1], frames[seam]
    swapped = data[:a] + data[b : b + lb] + data[a : a + la] + data[b + lb :]
    bad = good.with_name("swapped.cppf")
    bad.write_bytes(swapped)
    want = _error(bad, sample_keystore, split=False)
    assert "reordered or spliced" in want
    assert _error(bad, sample_keystore, split=True) == want


@pytest.mark.parametrize("cut", [1, 40, 1000])
def test_a_cut_file_gets_the_same_error(
    good: Path, sample_keystore: SoftwareKeyStore, cut: int
) -> None:
    bad = good.with_name("cut.cppf")
    bad.write_bytes(good.read_bytes()[:-cut])
    want = _error(bad, sample_keystore, split=False)
    assert _error(bad, sample_keystore, split=True) == want
