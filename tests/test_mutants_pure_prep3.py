"""What the mutation run of 5 December 2026 over cardperso.prep (a seeded sample of 250 on
43ac2f5) found unasserted (issue 18): the exact reject of a record holding a NUL byte and of a
JSON record naming a field twice, one-line records with quoted fields read by the quick check,
the track 2 sealed in each record, bytes after a file's trailer, segments copied around a
dropped record, the per-field reject counts, photos that are not regular files, the synthetic
generator's one broken rule per bad record, and the slow-path record encoders."""

from __future__ import annotations

import csv
import os
import types
from pathlib import Path

import pytest

from cardperso.errors import CardPersoError, UsageError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep import container
from cardperso.prep.build import _fit_slot
from cardperso.prep.input import Chunk, parse_chunk
from cardperso.prep.pipeline import PrepOptions, PrepSummary, prepare, validate_only
from cardperso.prep.synth import COLUMNS, _bad_records, make_batch, records
from cardperso.prep.validate import ROW, Reject, read_photo
from cardperso.profiles.loader import load_profile
from cardperso.profiles.model import Profile
from test_mutants_pure import _prep

PROFILE = load_profile("ssc3-pboc")


def _csv_chunk(data: bytes, columns: tuple[str, ...] = ("a", "b")) -> Chunk:
    return Chunk(0, "csv", columns, data, 2)


def _verdicts(chunk: Chunk) -> list[tuple[int, object]]:
    return [
        (line, (r.field, r.reason) if isinstance(r, Reject) else r)
        for line, r in parse_chunk(chunk)
    ]


def _rewrite_batch(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Write *rows* back to the batch at *path* with *columns* (others left out)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _prepare_one(tmp: Path, profile: Profile, store: SoftwareKeyStore) -> PrepSummary:
    """``prepare`` of ``tmp/b.csv`` into ``tmp/o.cppf`` (rejects ``tmp/r.csv``), one worker."""
    return prepare(tmp / "b.csv", profile, store, lambda: store, tmp / "o.cppf",
                   tmp / "r.csv", PrepOptions(batch_id="B", created=1767225600))  # fmt: skip


def test_a_nul_byte_rejects_the_whole_row_at_its_position() -> None:
    got = _verdicts(_csv_chunk(b"x,y\nab\x00c,d\n"))
    assert got == [
        (2, {"a": "x", "b": "y"}),
        (3, (ROW, "holds a NUL byte (byte 3 of the line)")),
    ]
    got = _verdicts(Chunk(0, "jsonl", (), b'{"name": "a\x00"}\n', 5))
    assert got == [(5, (ROW, "holds a NUL byte (byte 12 of the line)"))]


def test_a_json_record_naming_a_field_and_its_alias_is_rejected_on_that_field() -> None:
    # AAC003 is the ministry data dictionary's code for the name (profiles/fields.py ALIASES)
    data = '{"name": "王", "AAC003": "李"}\n{"name": "王", "name": "李"}\n'.encode()
    assert _verdicts(Chunk(0, "jsonl", (), data, 2)) == [
        (2, ("name", "given twice (name and alias)")),
        (3, ("name", "key given twice")),
    ]


def test_quoted_fields_on_one_line_are_read_as_csv_reads_them() -> None:
    # RFC 4180: a quoted field may hold the separator and doubled quotes
    data = b'"Zhang, San","say ""hi"""\nplain,"x"\n'
    assert _verdicts(_csv_chunk(data)) == [
        (2, {"a": "Zhang, San", "b": 'say "hi"'}),
        (3, {"a": "plain", "b": "x"}),
    ]
    # the same through the reader that cuts a file into chunks (its quick check for records
    # that run over a line end reads every line's quotes)
    from cardperso.prep.input import _Segmenter

    seg = _Segmenter()
    notes: list[tuple[int, int, str]] = []
    assert seg.piece(data, 2, notes, set(), True) == (data, 2)
    assert notes == []


def test_every_record_seals_its_track_2(tmp_path: Path, sample_keystore: SoftwareKeyStore) -> None:
    """ISO/IEC 7813 track 2: PAN '=' YYMM service code discretionary data (the profile's
    service code 220 and discretionary 00000)."""
    out = _prep(tmp_path, sample_keystore, "t2", seed=5)
    with open(tmp_path / "t2.csv", encoding="utf-8") as fh:
        rows = {i: r for i, r in enumerate(csv.DictReader(fh), start=2)}
    container.verify(out, sample_keystore)
    seen = 0
    for line, body in container.iter_records(out, sample_keystore):
        row = rows[line]
        want = f"{row['pan']}={row['expiry_date'][2:6]}22000000"
        track2 = body.track2.decode() if isinstance(body.track2, bytes) else body.track2
        assert track2 == want
        assert body.pan == row["pan"] or body.pan == row["pan"].encode()
        seen += 1
    assert seen == 6


def test_bytes_after_the_trailer_are_refused(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    out = _prep(tmp_path, sample_keystore, "x", seed=4)
    size = out.stat().st_size
    with open(out, "ab") as fh:
        fh.write(b"\x00")
    container._VERIFIED.clear()
    with pytest.raises(CardPersoError) as exc:
        container.verify(out, sample_keystore)
    assert "unexpected bytes after the trailer" in str(exc.value)
    assert getattr(exc.value, "offset", None) == size


def test_adjacent_ranges_merge_and_gaps_stay() -> None:
    assert list(container._merged([])) == []
    assert list(container._merged([(0, 5), (5, 9), (12, 20), (20, 21), (30, 31)])) == [
        (0, 9),
        (12, 21),
        (30, 31),
    ]


def test_a_segment_is_copied_around_a_dropped_record(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    """A worker's segment holds every framed record of its chunk; the writer copies the ranges
    it keeps (a duplicate's frame left out), byte for byte, in order."""
    src = _prep(tmp_path, sample_keystore, "s", seed=6)
    with open(src, "rb") as fh:
        header, raw = container.read_header(fh)
    seg = tmp_path / "segment"
    seg.write_bytes(b"A" * 10 + b"B" * 7 + b"C" * 5 + b"D" * 3 + b"E" * 4)
    w = container.PersoWriter(tmp_path / "out.cppf", header, bytes(32))
    w.add_segment(str(seg), [(0, 10), (17, 22), (25, 29)], b"", 0)
    w.add_frames(b"F" * 2, b"", 0)
    w.close(0, 0)
    body = (tmp_path / "out.cppf").read_bytes()[len(raw) :]
    assert body[:21] == b"A" * 10 + b"C" * 5 + b"E" * 4 + b"FF"


def test_rejects_are_counted_per_field(tmp_path: Path) -> None:
    batch = tmp_path / "b.csv"
    make_batch(batch, 12, photos=2)
    with open(batch, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i in (0, 3, 5):
        rows[i]["pan"] = rows[i]["pan"][:-1] + str((int(rows[i]["pan"][-1]) + 1) % 10)
    rows[7]["gender"] = "3"
    with open(batch, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    summary = validate_only(batch, PROFILE, tmp_path / "r.csv")
    assert summary.rejected == 4
    assert dict(summary.reasons) == {"pan": 3, "gender": 1}


def test_a_photo_that_is_not_a_regular_file_is_named_by_its_kind(tmp_path: Path) -> None:
    fifo = tmp_path / "p.jpg"
    os.mkfifo(fifo)
    assert read_photo(str(fifo)) == "is a FIFO (named pipe), not a regular file"
    assert read_photo("/dev/null") == "is a character device, not a regular file"
    assert read_photo(str(tmp_path)) == "is a directory, not a JPEG file"


def _index_of(rec: dict[str, str], base: list[dict[str, str]], changed: set[str]) -> list[int]:
    """The base records *rec* equals outside the *changed* fields."""
    return [
        i
        for i, b in enumerate(base)
        if all(rec[k] == b[k] for k in b if k not in changed) and rec != b
    ]


def test_each_synthetic_bad_record_breaks_its_one_rule(tmp_path: Path) -> None:
    """make_batch's invalid records (benchmarks and demos count on them): each is one of the
    first valid records with only its rule's fields changed, and is rejected for that rule."""
    seed = next(s for s in range(1, 200) if next(records(1, seed=s))["ssn"][17] == "0")
    base = list(records(16, seed=seed, photos=2))
    assert base[0]["ssn"][17] == "0"  # the wrong check character is then "1"
    bad = list(_bad_records(base))
    rules = [r for r, _ in bad]
    assert rules == [
        "ssn check character",
        "duplicate card number",
        "expiry before issue",
        "name not GBK",
        "PAN Luhn",
        "gender mismatch",
        "EC balance over limit",
        "missing photo",
    ]
    changed = {
        "ssn check character": {"ssn"},
        "duplicate card number": {"card_no", "ssn"},
        "expiry before issue": {"expiry_date"},
        "name not GBK": {"name"},
        "PAN Luhn": {"pan"},
        "gender mismatch": {"gender"},
        "EC balance over limit": {"ec_balance", "ec_limit"},
        "missing photo": {"photo"},
    }
    assert [_index_of(rec, base, changed[r]) for r, rec in bad] == [
        [0], [1], [3], [4], [5], [6], [7], [8]
    ]  # fmt: skip
    assert bad[0][1]["ssn"] == base[0]["ssn"][:17] + "1"
    assert (bad[6][1]["ec_balance"], bad[6][1]["ec_limit"]) == ("20000", "15000")
    # and the validator rejects each for its rule
    batch = tmp_path / "b.csv"
    make_batch(batch, 16, photos=2, errors=8, seed=seed)
    validate_only(batch, PROFILE, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", encoding="utf-8") as fh:
        got = [(int(r["line"]), r["field"]) for r in csv.DictReader(fh)]
    assert got == [
        (18, "ssn"),
        (19, "card_no"),
        (20, "expiry_date"),
        (21, "name"),
        (22, "pan"),
        (23, "gender"),
        (24, "ec_balance"),
        (25, "photo"),
    ]


@pytest.mark.parametrize(
    ("fmt", "value", "n", "want"),
    [
        # EMV Book 3 annex B: n is BCD right-justified with leading zeros, cn BCD
        # left-justified with trailing F, an ASCII left-justified padded with 00
        ("n", "12345", 4, "00012345"),
        ("cn", "12345", 4, "12345fff"),
        ("an", "AB1", 4, "41423100"),
        ("b", "0a0b", 2, "0a0b"),
    ],
)
def test_a_variable_field_is_encoded_in_its_record_format(
    fmt: str, value: str, n: int, want: str
) -> None:
    fit = _fit_slot("bank_code", fmt, n)
    cards = types.SimpleNamespace(n=2, text={"bank_code": [value, "X" * 40]})
    mat, bad = fit(cards)  # type: ignore[arg-type]
    assert mat[0].tobytes().hex() == want
    assert mat[1].tobytes() == bytes(n)  # refused: left zero
    assert [(i, f) for i, f, _r in bad] == [(1, "bank_code")]
    assert bad[0][2].startswith("does not fit its card record: ")


def test_iter_records_refuses_bytes_after_the_trailer(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    out = _prep(tmp_path, sample_keystore, "y", seed=4)
    container.verify(out, sample_keystore)
    size = out.stat().st_size
    assert len(list(container.iter_records(out, sample_keystore))) == 6
    with open(out, "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(CardPersoError) as exc:
        list(container.iter_records(out, sample_keystore))
    assert "unexpected bytes after the trailer" in str(exc.value)
    assert getattr(exc.value, "offset", None) == size


def test_the_bank_flow_gives_each_line_its_own_pool_key(sample_keystore: SoftwareKeyStore) -> None:
    """OdaRun.card (the bank's two-stage flow): the ICC key of a card is the run's key at its
    input line (line - first line), the same key again for the same line, another for the
    next; a PAN of another issuer is refused on its field and line."""
    from cardperso.codec.dgi import parse_dgis
    from cardperso.errors import DataError
    from cardperso.prep.build import pboc_dgis
    from cardperso.prep.oda_run import plan_run

    values = {
        "pan": "6228480000000000000",
        "pan_seq": "01",
        "expiry_date": "20360115",
        "issue_date": "20260115",
        "name_latin": "LI SI",
        "name_head": "李四".encode("gbk"),
        "ssn": "360426199101010071",
        "ec": (0, 15000, 1000, 1500),
    }
    blob = pboc_dgis(PROFILE, values, bytes(48), bytes(9), bytes(8))
    run = plan_run(PROFILE, sample_keystore, None, lines=lambda: 2, first_line=2, label="t")
    assert run is not None
    try:
        a = run.card(PROFILE, sample_keystore, 2, blob, values["pan"], "3601")
        b = run.card(PROFILE, sample_keystore, 3, blob, values["pan"], "3601")
        assert a.startswith(run.issuer_dgi) and b.startswith(run.issuer_dgi)
        assert run.card(PROFILE, sample_keystore, 2, blob, values["pan"], "3601") == a
        da, db = dict(parse_dgis(a)), dict(parse_dgis(b))
        assert da.keys() == db.keys()
        assert any(da[k] != db[k] for k in da)  # another ICC key, another certificate
        with pytest.raises(DataError) as exc:
            run.card(PROFILE, sample_keystore, 3, blob, "6212340000000000000", "3601")
        assert (exc.value.field, exc.value.record) == ("pan", 3)
        assert "issuer identifier 622848" in exc.value.reason
    finally:
        assert run.scratch is not None and os.path.isdir(run.scratch)
        run.close()
    assert not os.path.exists(run.scratch)  # the run's own pool is gone with it


def test_count_lines_counts_a_last_line_without_its_end(tmp_path: Path) -> None:
    from cardperso.prep.oda_run import count_lines

    path = tmp_path / "f"
    for data, want in [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\nb\n", 2), (b"\n\n", 2)]:
        path.write_bytes(data)
        assert count_lines(path) == want, data


def test_a_run_with_workers_keeps_its_segments_hidden_beside_the_output(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    """Workers write their records to segment files in a private (0700) directory beside the
    output (the same file system, for copy_file_range), hidden like the output's temporary
    file (``.NAME.*.segments``), removed at the end."""
    from cardperso.prep.pipeline import PrepOptions, prepare
    from profile_variants import write_without_oda

    make_batch(tmp_path / "in" / "b.csv", 40, photos=2)
    profile = load_profile(write_without_oda(tmp_path / "ssc3-pboc.yaml"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen: list[tuple[str, int]] = []

    def progress(_n: int) -> None:
        for p in out_dir.iterdir():
            if p.is_dir():
                seen.append((p.name, p.stat().st_mode & 0o777))

    before = set(tmp_path.iterdir())
    opts = PrepOptions(batch_id="B1", created=1767225600, workers=2, chunk_size=5)
    summary = prepare(
        tmp_path / "in" / "b.csv",
        profile,
        sample_keystore,
        lambda: sample_keystore,
        out_dir / "out.cppf",
        out_dir / "r.csv",
        opts,
        progress,
    )
    assert summary.prepared == 40
    assert seen, "no segment directory while the workers ran"
    for name, mode in seen:
        assert name.startswith(".out.cppf.") and name.endswith(".segments"), name
        assert mode == 0o700
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.cppf", "r.csv"]
    assert set(tmp_path.iterdir()) == before


def test_a_profile_without_a_tag_list_signs_no_aip(sample_keystore: SoftwareKeyStore) -> None:
    """EMV Book 3 10.3: when the SDA tag list 9F4A is present (it may list only 82) the AIP
    follows the AFL's records in the signed static data; without it nothing follows them."""
    import dataclasses

    from cardperso.prep.build import pboc_dgis
    from cardperso.prep.oda import OdaSetup, static_data_of

    assert PROFILE.pboc is not None
    dgis = tuple(
        dataclasses.replace(c, tlv=tuple(t for t in c.tlv if t.tag != 0x9F4A))
        for c in PROFILE.pboc.constant_dgis
    )
    bare = dataclasses.replace(PROFILE, pboc=dataclasses.replace(PROFILE.pboc, constant_dgis=dgis))
    with_list = OdaSetup.for_profile(PROFILE, sample_keystore)
    without = OdaSetup.for_profile(bare, sample_keystore)
    assert with_list is not None and without is not None
    assert (with_list.tag_list, without.tag_list) == (b"\x82", b"")
    values = {
        "pan": "6228480000000000000",
        "pan_seq": "01",
        "expiry_date": "20360115",
        "issue_date": "20260115",
        "name_latin": "LI SI",
        "name_head": "李四".encode("gbk"),
        "ssn": "360426199101010071",
        "ec": (0, 15000, 1000, 1500),
    }
    blob = pboc_dgis(PROFILE, values, bytes(48), bytes(9), bytes(8))
    signed = static_data_of(with_list, blob)
    assert signed == static_data_of(without, blob) + with_list.aip
    assert with_list.aip == bytes.fromhex("7D00")  # profiles/ssc3-pboc.yaml


def test_a_pool_under_another_kek_is_named_in_the_refusal(tmp_path: Path) -> None:
    from cardperso.errors import KeyStoreError
    from cardperso.keystore.poolgen import open_or_create
    from cardperso.prep.oda import reserve_for_run

    store = SoftwareKeyStore.generate(test_keys=True, kek_algorithm="3DES")
    pool = open_or_create(tmp_path / "pool", store, bits=1024, exponent=3, kek="transport-kek")
    with pytest.raises(UsageError) as exc:
        reserve_for_run(pool, store, bits=1408, lines=1, label="b")
    assert str(exc.value) == (
        f"ICC key pool {tmp_path / 'pool'} holds 1024-bit keys, the profile asks for 1408"
    )
    other = SoftwareKeyStore.generate(test_keys=True, kek_algorithm="3DES")
    with pytest.raises(KeyStoreError) as kexc:
        reserve_for_run(pool, other, bits=1024, lines=1, label="b")
    assert str(kexc.value).startswith(f"ICC key pool {tmp_path / 'pool'}: key 'transport-kek' ")
    assert "is not the KEK that protects the pool" in str(kexc.value)


def test_a_record_over_line_ends_is_followed_for_at_most_16_lines() -> None:
    """A quoted field that closes on the 16th line (MAX_RECORD_LINES) makes the 16 lines one
    rejected record; one that would close on the 17th leaves its first line rejected as never
    closed (the reader's window, docs/prep.md)."""
    from cardperso.prep.input import MAX_RECORD_LINES, _Segmenter

    assert MAX_RECORD_LINES == 16
    for span, want in [
        (16, [(2, 17, "record spans lines 2-17: a quoted field runs over a line end "
                      "(fields cannot hold line breaks)")]),
        (17, [(2, 2, "a quoted field is never closed (not within 16 lines or 65,536 bytes)")]),
    ]:  # fmt: skip
        data = b'a,"x\n' + b"y\n" * (span - 2) + b'z",b\nc,d\n'
        notes: list[tuple[int, int, str]] = []
        _Segmenter().piece(data, 2, notes, set(), True)
        assert notes[:1] == want, span


def test_an_over_long_line_is_skipped_whole_and_measured() -> None:
    import io

    from cardperso.prep.input import MAX_LINE_BYTES, _whole_lines

    size = MAX_LINE_BYTES + 5000
    data = b"h\n" + b"x" * size + b"\nok\n"
    pieces = list(_whole_lines(io.BytesIO(data), 4096))
    assert [long for _p, longs in pieces for long in longs] == [(0, size)]
    lines = b"".join(p for p, _l in pieces).split(b"\n")
    assert [x for x in lines if x] == [b"h", b"ok"]
    assert lines[:3] == [b"h", b"", b"ok"]  # the long line emptied in place: numbering kept


@pytest.mark.parametrize(
    ("seed", "mac", "pin6"),
    [
        # `printf %s 360426199101010071 | openssl dgst -sha256 -mac HMAC -macopt key:...`
        # (OpenSSL 3.0.19), run by hand on 5 December 2026
        (
            b"cardperso test pin seed",
            "da6bd8ff976ea9888cca2eed886d7acc714ecaa6c04bcb3e2ecff3a63915f793",
            "202312",  # 0xda6bd8ff976ea988 = 15738911915045202312
        ),
        # an 80-byte key (bytes 00..4F, -macopt hexkey:): hashed first (RFC 2104 section 2)
        (
            bytes(range(80)),
            "1805df0fe4aee7ba8779a8df312df4e066828f8c5041202fdf1a2065a99c38c0",
            "995066",  # 0x1805df0fe4aee7ba = 1731034891147995066
        ),
    ],
)
def test_seeded_pins_are_hmac_sha256_of_the_identity_number(
    seed: bytes, mac: str, pin6: str
) -> None:
    from cardperso.prep.keys import _SeededPins, seeded_pin

    ssn = "360426199101010071"
    assert _SeededPins(seed).digest(ssn.encode()).hex() == mac
    assert seeded_pin(seed, ssn, 6) == pin6
    assert seeded_pin(seed, ssn, 4) == pin6[2:]


def test_oda_setup_refuses_certificate_records_the_afl_cannot_serve() -> None:
    """The issuer certificate and the SSAD must be records the AFL names, and not records
    signed for ODA themselves (a record cannot hold its own signature)."""
    from cardperso.prep.oda import OdaSetup

    # profiles/ssc3-pboc.yaml's AFL: SFI 1 record 1 (ODA), SFI 2 1-3, SFI 3 1-2 (both ODA),
    # SFI 4 1-3; DGI = SFI << 8 | record
    afl = bytes.fromhex("08010101100103001801020220010300")

    def make(**kw: object) -> OdaSetup:
        args: dict[str, object] = {
            "issuer_sign": lambda block: block,
            "issuer_length": 144,
            "afl": afl,
            "aip": bytes.fromhex("7D00"),
            "cert_dgi": 0x0402,
            "transport_kek": "transport-kek",
        }
        return OdaSetup.make(**(args | kw))  # type: ignore[arg-type]

    assert make(ssad_dgi=0x0403).oda_dgis == ((1, 0x0101), (3, 0x0301), (3, 0x0302))
    for kw, reason in [
        ({"cert_dgi": 0x0501}, "ODA cert_dgi 0501 is not a record the AFL names"),
        ({"ssad_dgi": 0x0204 }, "ODA ssad_dgi 0204 is not a record the AFL names"),
        ({"cert_dgi": 0x0101}, "ODA cert_dgi 0101 is marked for ODA: it cannot sign itself"),
        ({"ssad_dgi": 0x0302}, "ODA ssad_dgi 0302 is marked for ODA: it cannot sign itself"),
        ({"aip": b"\x7d"}, "ODA: the AIP is 2 bytes, 9F4A lists 82 or nothing, the DAC 2 bytes"),
        ({"tag_list": b"\x9f\x36"}, "ODA: the AIP is 2 bytes, 9F4A lists 82 or nothing, the DAC 2 bytes"),
        ({"issuer_length": 63}, "ODA: the issuer modulus is 64 to 248 bytes"),
        ({"issuer_length": 249}, "ODA: the issuer modulus is 64 to 248 bytes"),
    ]:  # fmt: skip
        with pytest.raises(UsageError) as exc:
            make(**kw)
        assert str(exc.value) == reason, kw
    assert make(issuer_length=64).issuer_length == 64
    assert make(issuer_length=248, tag_list=b"").tag_list == b""


@pytest.mark.parametrize(
    ("fmt", "n", "const", "want"),
    [
        # simple TLV tag ‖ length ‖ value (ISO/IEC 7816-4 5.2.1), the value in EMV Book 3
        # annex B's formats: n right-justified with leading zeros, cn left-justified F-padded
        ("n", 3, "1234", "0303001234"),
        ("cn", 3, "1234", "03031234ff"),
        ("b", 2, "0a0b", "03020a0b"),
        ("an", 4, "AB", "030441420000"),
    ],
)
def test_a_constant_record_is_encoded_in_its_format(
    fmt: str, n: int, const: str, want: str
) -> None:
    from cardperso.prep.build import _const_value
    from cardperso.profiles.model import RecordSpec

    assert _const_value(RecordSpec(1, 0x03, n, fmt, None, const)).hex() == want  # type: ignore[arg-type]


def test_face_tracks_and_a_record_the_builder_refuses(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    """A product whose card face prints the card identification code (32 upper-case hex
    digits), the Latin name, the expiry YYMM and the Chinese name (joined by 1F), whose EF0D record 1
    (4 bytes, an) takes the bank code: a bank code of 8 digits (valid input) does not fit and
    that record alone is refused, the others prepared. Track 1 is ISO/IEC 7813 format B
    (``B`` PAN ``^`` name ``^`` YYMM service code discretionary data); no track 3."""
    import dataclasses

    from cardperso.profiles.model import FaceField

    assert PROFILE.ssse is not None
    files = tuple(
        dataclasses.replace(
            f,
            records=tuple(
                dataclasses.replace(r, src="bank_code", len=4) if r.src == "person_code" else r
                for r in f.records
            ),
        )
        for f in PROFILE.ssse.files
    )
    face = (
        FaceField("card_id", "card_id"),
        FaceField("latin", "name_latin"),
        FaceField("expiry", "expiry_yymm"),
    )
    profile = dataclasses.replace(
        PROFILE,
        card_face=(*face, FaceField("name", "name")),
        ssse=dataclasses.replace(PROFILE.ssse, files=files),
    )
    make_batch(tmp_path / "b.csv", 4, photos=1)
    with open(tmp_path / "b.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["name_latin"] = ""
    rows[1]["bank_code"] = "12345678"
    rows[2]["name_latin"] = "Zhang San"
    _rewrite_batch(tmp_path / "b.csv", rows, [*COLUMNS, "name_latin"])
    out = tmp_path / "o.cppf"
    summary = _prepare_one(tmp_path, profile, sample_keystore)
    assert (summary.read, summary.prepared, summary.rejected) == (4, 3, 1)
    with open(tmp_path / "r.csv", encoding="utf-8") as fh:
        (rej,) = list(csv.DictReader(fh))
    assert (rej["line"], rej["field"]) == ("3", "bank_code")
    assert rej["reason"].startswith("does not fit its card record: ")
    container.verify(out, sample_keystore)
    got = list(container.iter_records(out, sample_keystore))
    assert [line for line, _b in got] == [2, 4, 5]

    def text(v: object) -> str:
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    for line, body in got:
        row = rows[line - 2]
        latin = row["name_latin"].upper() or " /"  # EMV's "no name" default
        card_id = body.card_id.hex().upper() if isinstance(body.card_id, bytes) else ""
        assert len(card_id) == 32
        yymm = row["expiry_date"][2:6]
        assert text(body.face).split("\x1f") == [card_id, latin, yymm, row["name"]]
        assert text(body.track1) == f"B{row['pan']}^{latin}^{yymm}22000000"
        assert text(body.track3) == ""


def test_a_discretionary_data_that_makes_a_track_too_long_refuses_the_profile() -> None:
    """The builder checks the tracks its constants make once, with a 19-digit PAN: 13 digits
    of discretionary data make track 2 40 characters (ISO/IEC 7813: at most 37 between the
    sentinels), 60 letters make track 1 too long (track 2 keeps only the digits)."""
    import dataclasses

    from cardperso.errors import DataError
    from cardperso.prep.build import ChunkBuilder

    assert PROFILE.pboc is not None
    for disc, field, start in [("0" * 13, "track2", "track 2 is 40 characters, at most 37"),
                               ("A" * 60, "track1", "track 1 is ")]:  # fmt: skip
        p = dataclasses.replace(
            PROFILE, pboc=dataclasses.replace(PROFILE.pboc, track2_discretionary=disc)
        )
        with pytest.raises(DataError) as exc:
            ChunkBuilder(p)
        assert exc.value.field == field
        assert exc.value.reason.startswith(start), exc.value.reason
    ok = dataclasses.replace(PROFILE.pboc, track2_discretionary="0" * 10)
    ChunkBuilder(dataclasses.replace(PROFILE, pboc=ok))  # 37 characters: fits


def test_a_product_with_track_2_only_seals_an_empty_track_1(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    import dataclasses

    from cardperso.profiles.model import MagStripeSpec

    profile = dataclasses.replace(PROFILE, mag_stripe=MagStripeSpec(track1=False, track2=True))
    make_batch(tmp_path / "b.csv", 3, photos=1)
    with open(tmp_path / "b.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = tmp_path / "o.cppf"
    _prepare_one(tmp_path, profile, sample_keystore)
    container.verify(out, sample_keystore)
    got = list(container.iter_records(out, sample_keystore))
    assert len(got) == 3
    for line, body in got:
        row = rows[line - 2]
        assert body.track1 in ("", b"") and body.track3 in ("", b"")
        t2 = body.track2.decode() if isinstance(body.track2, bytes) else body.track2
        assert t2 == f"{row['pan']}={row['expiry_date'][2:6]}22000000"


def test_afl_refusals_name_the_entry_by_its_number() -> None:
    """EMV Book 3 10.2: each AFL entry is SFI << 3 ‖ first record ‖ last record ‖ the number of
    records (from the first) signed for ODA."""
    from cardperso.prep.oda import afl_records

    good = "08010101"
    assert afl_records(bytes.fromhex(good + "10010302")) == [
        (1, 1, True), (2, 1, True), (2, 2, True), (2, 3, False)
    ]  # fmt: skip
    for afl, reason in [
        (good + "00010100", "AFL (94) entry 2: bad SFI or record range"),
        (good + good + "08030201", "AFL (94) entry 3: bad SFI or record range"),
        (good + "09010101", "AFL (94) entry 2: bad SFI or record range"),
        (good + "10010203", "AFL (94) entry 2: more ODA records than records"),
        (good + "08", "AFL (94): a whole number of 4-byte entries"),
    ]:
        with pytest.raises(UsageError) as exc:
            afl_records(bytes.fromhex(afl))
        assert str(exc.value) == reason, afl


def test_a_chunk_over_one_seal_group_is_sealed_record_by_record(
    sample_keystore: SoftwareKeyStore,
) -> None:
    """seal_chunk encrypts at most _SEAL_GROUP records per AES call: a chunk of one more gives
    every record the AES-CTR stream of its own nonce (its input line), as open_sealed reads,
    each ciphertext padded to whole blocks. (Contents that are not whole blocks, as seal_many
    takes them, came back misaligned past the first record in a chunk over 4096 records: the
    groups' padded ciphertexts with the unpadded lengths. The pipeline's contents are whole
    blocks, so no file was affected; fixed with this test.)"""
    import hashlib

    import numpy as np

    from cardperso.codec.columns import Var

    keys = container.batch_keys(
        sample_keystore, "transport-kek", "B1", PROFILE.digest, hashlib.sha256(b"in").digest()
    )
    n = container._SEAL_GROUP + 1
    sizes = np.array([17 + i % 23 for i in range(n)], np.int64)
    plain = np.frombuffer(hashlib.shake_128(b"records").digest(int(sizes.sum())), np.uint8)
    lines = np.arange(2, n + 2, dtype=np.int64)
    sealed = container.seal_chunk(keys, lines, Var(plain.copy(), sizes))
    padded = ((sizes + 15) >> 4) << 4
    assert list(sealed.lengths) == list(padded)
    data = sealed.data.tobytes()
    assert len(data) == int(padded.sum())
    ends, pends = np.cumsum(sizes).tolist(), np.cumsum(padded).tolist()
    starts, pstarts = [0, *ends[:-1]], [0, *pends[:-1]]
    for i in (0, 1, 4095, n - 1):
        nonce = int(lines[i]).to_bytes(8, "big")
        got = container.open_sealed(keys, nonce, data[pstarts[i] : pstarts[i] + int(sizes[i])])
        assert got == plain[starts[i] : ends[i]].tobytes(), i
    small = container.seal_chunk(keys, lines[-3:], Var(plain[starts[-3] :].copy(), sizes[-3:]))
    assert small.data.tobytes() == data[pstarts[-3] :]
    items = [(int(lines[i]), plain[starts[i] : ends[i]].tobytes()) for i in range(n)]
    for (line, content), (nonce, ct) in list(zip(items, container.seal_many(keys, items)))[-2:]:
        assert nonce == line.to_bytes(8, "big")
        assert container.open_sealed(keys, nonce, ct) == content


def _luhn(body: str) -> str:
    """*body* with its Luhn check digit (ISO/IEC 7812-1 annex B)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str(-total % 10)


def test_amounts_over_12_digits_and_pans_outside_16_to_19_digits_are_rejected(
    tmp_path: Path,
) -> None:
    """A column with one value that is not a number takes the per-value path: an amount of
    13 digits (0000000000001) is refused there too, as the per-record validator refuses it; a
    PAN with a good Luhn digit but 15 or 20 digits is refused
    by its length (ISO/IEC 7812-1 allows up to 19; PBOC cards use 16-19)."""
    assert _luhn("7992739871") == "79927398713"  # the Luhn example of ISO/IEC 7812-1
    batch = tmp_path / "b.csv"
    make_batch(batch, 8, photos=1)
    with open(batch, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["ec_limit"] = "1x"
    rows[1]["ec_balance"] = "0000000000001"
    rows[2]["pan"] = _luhn("62284800000000")
    rows[3]["pan"] = _luhn("6228480000000000000")
    rows[4]["ec_balance"] = "123456789012"  # 12 digits: a number, over the limit
    with open(batch, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    validate_only(batch, PROFILE, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", encoding="utf-8") as fh:
        got = [(r["line"], r["field"], r["reason"]) for r in csv.DictReader(fh)]
    fen = "must be a whole number of fen (0-999999999999)"
    assert got == [
        ("2", "ec_limit", fen),
        ("3", "ec_balance", fen),
        ("4", "pan", "PAN must be 16-19 digits, got 15"),
        ("5", "pan", "PAN must be 16-19 digits, got 20"),
        ("6", "ec_balance", "exceeds ec_limit"),
    ]
    # the per-record validator agrees
    from cardperso.prep.validate import Validator

    v = Validator(PROFILE, tmp_path)
    for i in (1, 2, 3):
        with pytest.raises(Reject) as exc:
            v.check(dict(rows[i]))
        assert (exc.value.field, exc.value.reason) == got[i][1:]


def test_a_name_over_30_gbk_bytes_is_split_on_a_character_boundary(tmp_path: Path) -> None:
    """EF06 tag 09 holds 30 bytes of the GBK name, tag 4E the next 20 (social-security-card.md):
    a 2-byte character is never cut, so A + 15 x 张 (31 bytes) puts A + 14 x 张 (29 bytes,
    00-padded) in 09 and one 张 in 4E; 张 is D5C5 in GBK (GB 2312 row 53, cell 37)."""
    import random

    from cardperso.prep.cards import cards_of
    from cardperso.prep.synth import make_photo
    from cardperso.prep.validate import Validator
    from test_prep import known_record

    (tmp_path / "p.jpg").write_bytes(make_photo(random.Random(1)))
    names = ["A" + "张" * 15, "张" * 15, "张" * 25]
    recs = [known_record() | {"photo": "p.jpg", "name": n} for n in names]
    v = Validator(PROFILE, tmp_path)
    cards = cards_of(v, recs)
    zhang = bytes.fromhex("d5c5")
    assert cards.n == 3
    assert cards.name_head[0].tobytes() == b"A" + zhang * 14 + b"\0"
    assert cards.name_ext[0].tobytes() == zhang + bytes(18)
    assert cards.name_head[1].tobytes() == zhang * 15  # exactly 30: no extension
    assert cards.name_ext[1].tobytes() == bytes(20)
    assert cards.name_head[2].tobytes() == zhang * 15
    assert cards.name_ext[2].tobytes() == zhang * 10
    with pytest.raises(Reject) as exc:
        cards_of(v, [known_record() | {"photo": "p.jpg", "name": "A" + "张" * 25}])
    assert (exc.value.field, exc.value.reason) == (
        "name",
        "is 51 bytes in GBK, max 50 (30 name + 20 extension)",
    )


def test_the_record_validator_bounds_the_latin_name_and_drops_a_seeded_products_pin(
    tmp_path: Path,
) -> None:
    """name_latin goes to track 1's name field (ISO/IEC 7813: at most 26 characters); a
    product whose PINs are all seeded drops an input PIN from the normalized record."""
    import dataclasses
    import random

    from cardperso.prep.synth import make_photo
    from cardperso.prep.validate import Validator
    from test_prep import known_record

    (tmp_path / "p.jpg").write_bytes(make_photo(random.Random(1)))
    v = Validator(PROFILE, tmp_path)
    rec = known_record() | {"photo": "p.jpg"}
    assert v.check(dict(rec) | {"name_latin": "A" * 26})["name_latin"] == "A" * 26
    for bad in ("A" * 27, "A", "ZHANG_SAN"):
        with pytest.raises(Reject) as exc:
            v.check(dict(rec) | {"name_latin": bad})
        assert (exc.value.field, exc.value.reason) == (
            "name_latin",
            "must be 2-26 Latin letters, spaces, '/', '.' or '-'",
        )
    assert v.check(dict(rec) | {"pin": "123456"})["pin"] == "123456"  # input-or-seeded
    seeded = dataclasses.replace(PROFILE, pin=dataclasses.replace(PROFILE.pin, source="seeded"))
    assert Validator(seeded, tmp_path).check(dict(rec) | {"pin": "123456"})["pin"] == ""
    # a product whose PINs all come from the input requires one in every record
    given = dataclasses.replace(PROFILE, pin=dataclasses.replace(PROFILE.pin, source="input"))
    vi = Validator(given, tmp_path)
    assert "pin" in vi.required and "pin" not in v.required
    for r, reason in [(dict(rec), "required field is missing"),
                      (dict(rec) | {"pin": ""}, "required field is empty")]:  # fmt: skip
        with pytest.raises(Reject) as exc:
            vi.check(r)
        assert (exc.value.field, exc.value.reason) == ("pin", reason)
    assert vi.check(dict(rec) | {"pin": "123456"})["pin"] == "123456"


def test_an_optional_photo_column_may_be_left_out_of_the_batch(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    """A product whose photo is optional (no PBOC application) prepares a batch that has no
    photo column at all: the card face's photo field is empty."""
    import dataclasses

    temporary = dataclasses.replace(load_profile("ssc3-temporary"), photo="optional")
    assert temporary.pboc is None
    make_batch(tmp_path / "b.csv", 3, photos=1)
    with open(tmp_path / "b.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in COLUMNS if c not in ("photo", "pan", "pan_seq", "bank_code")]
    _rewrite_batch(tmp_path / "b.csv", rows, cols)
    out = tmp_path / "o.cppf"
    summary = _prepare_one(tmp_path, temporary, sample_keystore)
    assert (summary.prepared, summary.rejected) == (3, 0)
    container.verify(out, sample_keystore)
    for line, body in container.iter_records(out, sample_keystore):
        face = body.face.decode() if isinstance(body.face, bytes) else body.face
        fields = face.split("\x1f")
        assert len(fields) == len(temporary.card_face)
        assert fields[0] == rows[line - 2]["name"] and fields[-1] == ""  # name ... photo


def test_synthetic_records_give_the_ec_amounts_all_or_none() -> None:
    keys = ("ec_balance", "ec_limit", "ec_single_limit", "ec_reset_threshold")
    recs = list(records(200, seed=2, photos=2))
    given = [tuple(r[k] != "" for k in keys) for r in recs]
    assert set(given) == {(True,) * 4, (False,) * 4}  # both kinds occur, never a mix
    assert {r["application_type"] for r in recs} == {"batch", "sporadic"}
    for r in recs:
        if r["ec_limit"]:
            assert int(r["ec_balance"]) <= int(r["ec_limit"])
            assert int(r["ec_single_limit"]) <= int(r["ec_limit"])


def test_synthetic_batches_hold_what_the_generator_promises() -> None:
    """prep/synth.py's docstring: PANs of 16 and 19 digits, long minority names; and names of
    two and of three characters (a surname and one or two given characters, the common
    Chinese forms). (The docstring says the long names are over 30 GBK bytes and need the
    EF06 extension: the longest is 30 bytes, so synthetic batches never use the extension;
    test_a_name_over_30_gbk_bytes_is_split_on_a_character_boundary covers it.)"""
    recs = list(records(300, seed=3, photos=2))
    assert {len(r["pan"]) for r in recs} == {16, 19}
    gbk = [len(r["name"].encode("gbk")) for r in recs]
    assert max(gbk) == 30
    lengths = {len(r["name"]) for r in recs}
    assert {2, 3} <= lengths
