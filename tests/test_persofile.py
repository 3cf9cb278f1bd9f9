"""The personalization file refuses tampering, truncation, reordering and mixing before any
card is touched; the fast writer's bytes are what the Construct layouts describe."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest

from cardperso.errors import CardPersoError, DecodeError, KeyStoreError, MacMismatch, UsageError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep.container import batch_keys, iter_records, open_sealed, read_header, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")


def _prep(tmp: Path, store: SoftwareKeyStore, name: str, batch_id: str, count: int = 12) -> Path:
    src = tmp / f"{name}.csv"
    make_batch(src, count, photos=2, seed=len(name))
    out = tmp / f"{name}.cppf"
    prepare(
        src,
        PROFILE,
        store,
        lambda: store,
        out,
        tmp / f"{name}-rejects.csv",
        PrepOptions(batch_id=batch_id, created=1767225600),
    )
    return out


@pytest.fixture
def files(tmp_path: Path, sample_keystore: SoftwareKeyStore) -> tuple[Path, Path, Path]:
    a = _prep(tmp_path, sample_keystore, "a", "A")
    b = _prep(tmp_path, sample_keystore, "b", "B")
    a2 = _prep(tmp_path, sample_keystore, "aa", "A")  # same batch id, other records
    return a, b, a2


def _frames(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Split a file into header, record frames and trailer with the Construct layouts."""
    with open_bytes(data) as fh:
        _h, raw = read_header(fh)
    pos, frames = len(raw), []
    while data[pos : pos + 4] != pf.TRAILER_MAGIC:
        rec = pf.RECORD.parse(data[pos:])
        size = 8 + rec.length + 16
        frames.append(data[pos : pos + size])
        pos += size
    return raw, frames, data[pos:]


def open_bytes(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def test_good_file_verifies(
    files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    result = verify(a, sample_keystore)
    assert result.records == 12 and result.header.profile == "ssc3-pboc"
    assert result.header.profile_digest == PROFILE.digest


def test_fast_writer_matches_the_construct_layouts(
    files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    data = a.read_bytes()
    raw, frames, trailer = _frames(data)
    header = pf.PERSO_HEADER.decode(raw)
    keys = batch_keys(sample_keystore, "transport-kek", "A", PROFILE.digest, header.input_digest)
    assert header.input_digest == hashlib.sha256(a.with_suffix(".csv").read_bytes()).digest()
    assert pf.PERSO_HEADER.encode(header) == raw
    assert header.record_count == len(frames) == 12
    for seq, frame in enumerate(frames):
        rec = pf.PERSO_RECORD.decode(frame)
        assert rec.line == seq + 2 and pf.PERSO_RECORD.encode(rec) == frame
        body = pf.PERSO_RECORD_BODY.decode(rec.body)
        assert pf.PERSO_RECORD_BODY.encode(body) == rec.body
        content = open_sealed(keys, body.nonce, body.sealed)
        opened = pf.PERSO_RECORD_CONTENT.decode(content)
        assert pf.PERSO_RECORD_CONTENT.encode(opened) == content
        assert opened.ssn.encode() not in frame and opened.ssn[:6] == body.ssn_masked[:6]
    t = pf.PERSO_TRAILER.decode(trailer)
    assert t.record_count == 12 and pf.PERSO_TRAILER.encode(t) == trailer


def _refused(
    path: Path, data: bytes, store: SoftwareKeyStore, exc: type[Exception], match: str
) -> None:
    path.write_bytes(data)
    with pytest.raises(exc, match=match):
        verify(path, store)


def test_tampering_is_refused(
    tmp_path: Path, files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    data = a.read_bytes()
    raw, frames, _t = _frames(data)
    bad = tmp_path / "bad.cppf"
    # one bit in a record body (a DGI byte)
    pos = len(raw) + len(frames[0]) + 200
    flipped = data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :]
    _refused(bad, flipped, sample_keystore, MacMismatch, "record 1 .* MAC does not verify")
    # one bit in a record MAC
    pos = len(raw) + len(frames[0]) - 1
    _refused(
        bad,
        data[:pos] + bytes([data[pos] ^ 0x80]) + data[pos + 1 :],
        sample_keystore,
        MacMismatch,
        "record 0",
    )
    # the header: the created time (covered by the file MAC)
    pos = 29
    _refused(
        bad,
        data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1 :],
        sample_keystore,
        MacMismatch,
        "file MAC",
    )
    # the header's record count
    head = bytearray(data)
    struct.pack_into(">I", head, pf.RECORD_COUNT_OFFSET, 11)
    _refused(bad, bytes(head), sample_keystore, DecodeError, "record count mismatch")
    # the batch id (changes the MAC key: every record fails)
    patched = data.replace(b"\x01A", b"\x01Z", 1)
    _refused(bad, patched, sample_keystore, MacMismatch, "record 0")
    # the file MAC
    _refused(bad, data[:-1] + bytes([data[-1] ^ 1]), sample_keystore, MacMismatch, "file MAC")
    # a record's length field
    pos = len(raw)
    huge = data[:pos] + b"\xff\xff\xff\xff" + data[pos + 4 :]
    _refused(bad, huge, sample_keystore, DecodeError, "record length is implausible")
    longer = data[:pos] + (int.from_bytes(data[pos : pos + 4], "big") + 1).to_bytes(4, "big")
    _refused(bad, longer + data[pos + 4 :], sample_keystore, MacMismatch, "record 0")


def test_truncation_is_refused(
    tmp_path: Path, files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    data = a.read_bytes()
    raw, frames, trailer = _frames(data)
    bad = tmp_path / "bad.cppf"
    _refused(bad, data[:-1], sample_keystore, DecodeError, "truncated inside the trailer")
    _refused(bad, data[: -len(trailer)], sample_keystore, DecodeError, "no trailer")
    cut = raw + b"".join(frames[:-1])
    _refused(bad, cut, sample_keystore, DecodeError, "no trailer")
    _refused(bad, cut + trailer, sample_keystore, DecodeError, "record count mismatch")
    _refused(bad, data[: len(raw) + 30], sample_keystore, DecodeError, "truncated inside a record")
    _refused(bad, data[:20], sample_keystore, DecodeError, "truncated inside the header")
    _refused(
        bad, data + b"\x00", sample_keystore, DecodeError, "unexpected bytes after the trailer"
    )
    _refused(bad, b"", sample_keystore, DecodeError, "bad magic")


def test_reordering_is_refused(
    tmp_path: Path, files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    raw, frames, trailer = _frames(a.read_bytes())
    swapped = [frames[1], frames[0], *frames[2:]]
    bad = tmp_path / "bad.cppf"
    _refused(bad, raw + b"".join(swapped), sample_keystore, DecodeError, "reordered")
    # renumbering the swapped frames does not help: the MAC binds the input line number
    renum = [f[:4] + struct.pack(">I", i + 2) + f[8:] for i, f in enumerate(swapped)]
    _refused(bad, raw + b"".join(renum) + trailer, sample_keystore, MacMismatch, "record 0")


def test_mixing_is_refused(
    tmp_path: Path, files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    a, b, a2 = files
    raw_a, frames_a, trailer_a = _frames(a.read_bytes())
    _raw_b, frames_b, _tb = _frames(b.read_bytes())
    _raw_a2, frames_a2, _ta2 = _frames(a2.read_bytes())
    bad = tmp_path / "bad.cppf"
    # a record of another batch at the same position
    mixed = [frames_a[0], frames_b[1], *frames_a[2:]]
    _refused(bad, raw_a + b"".join(mixed) + trailer_a, sample_keystore, MacMismatch, "record 1")
    # a record of another file with the same batch id and position: caught by the file MAC
    mixed = [frames_a[0], frames_a2[1], *frames_a[2:]]
    _refused(bad, raw_a + b"".join(mixed) + trailer_a, sample_keystore, MacMismatch, "file MAC")


def test_other_kek_is_refused(
    files: tuple[Path, Path, Path], fresh_keystore: SoftwareKeyStore
) -> None:
    a, _b, _a2 = files
    with pytest.raises(KeyStoreError, match="different 'transport-kek'"):
        verify(a, fresh_keystore)


def test_records_decode_and_carry_no_clear_secret(
    files: tuple[Path, Path, Path], sample_keystore: SoftwareKeyStore
) -> None:
    from cardperso.codec.dgi import parse_dgis

    a, _b, _a2 = files
    with pytest.raises(UsageError, match="encrypted"):
        list(iter_records(a))  # neither a key store nor a verified file: refused
    recs = list(iter_records(a, sample_keystore))
    verify(a, sample_keystore)  # the station's flow: verify, then read without the store
    assert [line for line, _ in iter_records(a)] == [line for line, _ in recs]
    data = a.read_bytes()
    for _line, body in recs:
        assert body.ssn.encode() not in data and body.pan.encode() not in data
    assert [line for line, _ in recs] == list(range(2, 14))
    for _seq, body in recs:
        ssse = dict(parse_dgis(body.apps[0].dgis))
        assert all(len(ssse[0x8F00 | k.id]) == 16 for k in PROFILE.ssse.keys)
        # encrypted, not a clear ISO 9564 format-2 PIN block (2, length, digits, F fill); an
        # encrypted block starts with 0x26 once in 256, so the whole pattern is what is checked
        n = PROFILE.pin.length
        clear = rf"2{n:x}[0-9]{{{n}}}f{{{14 - n}}}"
        assert len(ssse[0x8F10]) == 8 and not re.fullmatch(clear, ssse[0x8F10].hex())


def test_errors_are_cardperso_errors() -> None:
    assert issubclass(MacMismatch, CardPersoError) and issubclass(DecodeError, CardPersoError)
