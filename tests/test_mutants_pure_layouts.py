"""Layout behaviour that the mutation run over cardperso.layouts found unasserted (issue 18):
the BER length forms at their edges, the range checks of SSSE record specs, perso-file header
values and batch ids on both sides of each limit, with the exact refusal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import construct as cs
import pytest

from cardperso.errors import DataError, DecodeError, EncodingError, UsageError
from cardperso.layouts import gp, pboc, pboc_ac
from cardperso.layouts import persofile as pf
from cardperso.layouts.base import LAYOUTS, BerLength, FieldError, Layout, all_layouts
from cardperso.layouts.gp import KeyComponent, KeyInfo, KeyInformationTemplate
from cardperso.layouts.ssse import (
    EF0D,
    EF05,
    EF05_RECORDS,
    EF06,
    EF06_V1,
    Ef0D,
    RecordFile,
    RecordSpec,
    _decode_date,
    _decode_text,
    _encode_date,
    override,
    record_file,
)


def test_ber_length_forms_at_their_edges() -> None:
    built = {n: BerLength.build(n).hex() for n in (0, 0x7F, 0x80, 0xFF, 0x100, 0xFFFFFF)}
    assert built == {
        0: "00", 0x7F: "7f", 0x80: "8180", 0xFF: "81ff", 0x100: "820100", 0xFFFFFF: "83ffffff",
    }  # fmt: skip
    for n, raw in built.items():
        assert BerLength.parse(bytes.fromhex(raw)) == n
    with pytest.raises(cs.ExplicitError, match=r"unsupported BER length byte 84"):
        BerLength.parse(bytes.fromhex("8400000001"))
    with pytest.raises(cs.ExplicitError, match=r"unsupported BER length byte 80"):
        BerLength.parse(bytes.fromhex("80"))
    with pytest.raises(cs.ExplicitError, match=r"negative length"):
        BerLength.build(-1)
    with pytest.raises(cs.ExplicitError, match=r"length 16777216 is too large"):
        BerLength.build(0x1000000)


def test_record_spec_ranges() -> None:
    RecordSpec(254, 0xFE, "x", 254, "b")  # every upper edge is allowed
    RecordSpec(1, 0x01, "x", 0, "b")  # and every lower one
    for args, message in (
        ((255, 1, "x", 1, "b"), "record x: record number 255 out of 1..254"),
        ((0, 1, "x", 1, "b"), "record x: record number 0 out of 1..254"),
        ((1, 0xFF, "x", 1, "b"), "record x: tag 255 out of 01..FE"),
        ((1, 0, "x", 1, "b"), "record x: tag 0 out of 01..FE"),
        ((1, 1, "x", 255, "b"), "record x: length 255 out of 0..254"),
        ((1, 1, "x", 1, "zz"), "record x: unknown format 'zz'"),
    ):
        with pytest.raises(UsageError) as exc:
            RecordSpec(*args)  # type: ignore[arg-type]
        assert str(exc.value) == message


def test_ssse_text_and_date_refusals() -> None:
    with pytest.raises(DecodeError) as dec:
        _decode_text(b"A\x00B", "ascii", "name")
    assert (dec.value.field, dec.value.offset) == ("name", 1)
    assert _decode_text(b"AB\x00\x00", "ascii", "name") == "AB"
    with pytest.raises(EncodingError) as enc:
        _encode_date("2026", 4, "issue_date")
    assert (enc.value.field, enc.value.reason) == (
        "issue_date",
        "date must be 8 digits (YYYYMMDD) or empty",
    )
    assert _encode_date("", 4, "issue_date") == b"\xff" * 4


def test_perso_file_created_and_batch_id_limits() -> None:
    pf.check_created(0)
    pf.check_created(pf.CREATED_MAX)
    created = (
        f"--created must be between 1970-01-01 and 9999-12-31 (0 to {pf.CREATED_MAX} Unix seconds)"
    )
    for bad in (-1, pf.CREATED_MAX + 1):
        with pytest.raises(UsageError) as exc:
            pf.check_created(bad)
        assert str(exc.value) == created
    pf.check_batch_id("B 2026-01")  # a space is text, not a control character
    pf.check_batch_id("批次\u00a0一")  # U+00A0 is the first character after the C1 controls
    for bad, message in (
        ("B\x1f1", "--batch-id must not contain control characters"),
        ("B\x7f1", "--batch-id must not contain control characters"),
        ("B\x9f1", "--batch-id must not contain control characters"),
        ("   ", "--batch-id must not be blank"),
        ("", "--batch-id must be 1 to 255 bytes of UTF-8, got 0"),
        ("批" * 86, "--batch-id must be 1 to 255 bytes of UTF-8, got 258"),
        ("B\ud800", "--batch-id is not valid text (lone surrogate)"),
    ):
        with pytest.raises(UsageError) as exc:
            pf.check_batch_id(bad)
        assert str(exc.value) == message
    pf.check_batch_id("批" * 85)  # 255 bytes


def test_pboc_and_gp_value_refusals() -> None:
    import datetime

    from cardperso.layouts import gp, pboc

    for bad in (True, -1, 10**12):
        with pytest.raises(EncodingError) as enc:
            pboc._check_amount(bad, "fen")  # type: ignore[arg-type]
        assert (enc.value.field, enc.value.reason) == (
            "fen",
            "amount must be an int from 0 to 999999999999 fen (n12)",
        )
    pboc._check_amount(10**12 - 1, "fen")
    with pytest.raises(EncodingError) as enc:
        pboc.AflEntry(1, 3, 2)
    assert (enc.value.field, enc.value.reason) == (
        "first",
        "records 3..2: need 1 <= first <= last <= 254",
    )
    with pytest.raises(DecodeError) as dec:
        gp.cplc_date(b"\x6a\x01", datetime.date(2026, 1, 1))
    assert dec.value.reason == "CPLC date is not BCD"


# -- second round (issue 18): the survivors of the 250-mutant sample that a caller can observe --


def test_ber_length_errors_carry_their_construct_path() -> None:
    record = cs.Struct("len" / BerLength)
    with pytest.raises(cs.ExplicitError) as parsed:
        record.parse(bytes.fromhex("84"))
    assert str(parsed.value) == "Error in path (parsing) -> len\nunsupported BER length byte 84"
    with pytest.raises(cs.ExplicitError) as built:
        record.build({"len": -1})
    assert str(built.value) == "Error in path (building) -> len\nnegative length"


def test_field_error_keeps_its_reason_in_the_message() -> None:
    err = FieldError("bad thing", path="(parsing) -> x", offset=1, field="x")
    assert str(err) == "Error in path (parsing) -> x\nbad thing"
    assert (err.reason, err.offset, err.field) == ("bad thing", 1, "x")


def test_layout_model_must_be_frozen_and_slotted() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    for model in (Unslotted, Mutable):
        with pytest.raises(UsageError) as exc:
            Layout("t", "test", cs.Struct("a" / cs.Byte), model, register=False)
        assert str(exc.value) == "layout 't': model must be a frozen, slotted dataclass"


def test_override_may_change_the_tag() -> None:
    rows = override(EF05_RECORDS, {"card_number": {"tag": 0x33, "rec": 9}})
    (row,) = [r for r in rows if r.name == "card_number"]
    assert (row.tag, row.rec) == (0x33, 9)
    with pytest.raises(UsageError) as exc:
        override(EF05_RECORDS, {"card_number": {"name": "x"}})
    assert str(exc.value) == "record card_number: cannot override name"


def test_ef0d_repr_hides_the_identification_code() -> None:
    assert repr(Ef0D.__new__(Ef0D)) == "Ef0D(<personal data>)"


def test_perso_header_created_at_and_past_its_limit() -> None:
    vector = pf.PERSO_HEADER.vectors[0][1]
    header = pf.PERSO_HEADER.decode(vector)
    fields_ = {name: getattr(header, name) for name in pf.PersoHeader.__dataclass_fields__}
    edge = pf.PersoHeader(**{**fields_, "created": pf.CREATED_MAX})
    encoded = pf.PERSO_HEADER.encode(edge)
    assert pf.PERSO_HEADER.decode(encoded).created == pf.CREATED_MAX
    with pytest.raises(EncodingError) as enc:
        pf.PERSO_HEADER.encode(pf.PersoHeader(**{**fields_, "created": pf.CREATED_MAX + 1}))
    assert (enc.value.field, enc.value.reason) == (
        "created",
        "persofile.header: creation time is out of range",
    )
    raw = bytearray(encoded)
    raw[22:30] = (pf.CREATED_MAX + 1).to_bytes(8, "big")
    with pytest.raises(DecodeError) as dec:
        pf.PERSO_HEADER.decode(bytes(raw))
    assert (dec.value.field, dec.value.offset, dec.value.reason) == (
        "created",
        22,
        "at offset 22: persofile.header: creation time is out of range (corrupt file)",
    )


# -- code that otherwise runs only while the modules are imported (see docs/testing.md: mutmut
# -- cannot switch a mutant on there, so these call it again inside a test) ----------------------


def test_all_layouts_imports_every_layout_module() -> None:
    registry = all_layouts()
    assert {name.split(".")[0] for name in registry} >= {"gp", "pboc", "persofile", "ssse"}
    assert registry["ssse.ef05"] is EF05
    assert registry["persofile.header"] is pf.PERSO_HEADER


@pytest.mark.parametrize("strict", [gp._strict, pboc._strict])
def test_strict_takes_the_value_and_refuses_trailing_bytes(
    strict: Callable[[cs.Construct], cs.Construct],
) -> None:
    value = strict(cs.Bytes(2))
    assert value.parse(b"\x01\x02") == b"\x01\x02"
    assert value.build(b"ab") == b"ab"
    with pytest.raises(cs.TerminatedError, match="expected end of stream"):
        value.parse(b"\x01\x02\x03")


def test_kit_keys_builds_one_component_per_key() -> None:
    assert gp._kit_keys((1, 2, 0x80, 16), (3, 4, 0x88, 24)) == KeyInformationTemplate(
        (
            KeyInfo(1, 2, (KeyComponent(0x80, 16),)),
            KeyInfo(3, 4, (KeyComponent(0x88, 24),)),
        )
    )


@pytest.mark.parametrize("layout", [EF05, EF06, EF06_V1, EF0D], ids=lambda lay: lay.name)
def test_record_file_built_again_matches_the_declared_one(layout: RecordFile[Any]) -> None:
    """A profile builds its record files with record_file() (unregistered) from a table: the
    result must encode and decode every vector of the declared file, name splitting included,
    and must leave the registry alone."""
    again = record_file(layout.name, "a profile's table", layout.model, layout.records)
    assert (again.name, again.spec, again.records) == (
        layout.name,
        "a profile's table",
        layout.records,
    )
    assert layout.vectors
    for model, raw in layout.vectors:
        assert again.encode(model) == raw
        assert again.decode(raw) == model
    assert LAYOUTS[layout.name] is layout


# -- third round: the sample drawn after layouts/x509 and pboc_ac were added ----------------------


def test_ssse_date_refusals_name_their_field() -> None:
    with pytest.raises(DecodeError) as dec:
        _decode_date(bytes.fromhex("202601FF"), 4, "issue_date")
    assert (dec.value.field, dec.value.reason) == ("issue_date", "date has 6 digits, expected 8")
    with pytest.raises(EncodingError) as enc:
        _encode_date("2026AB01", 4, "issue_date")
    assert (enc.value.field, enc.value.reason) == (
        "issue_date",
        "cn allows digits 0-9 only; character at position 4 is not a digit",
    )


def test_a_bad_record_value_names_the_record() -> None:
    raw = bytearray(EF05.vectors[0][1])
    at = raw.index(bytes.fromhex("050420240101"))
    raw[at + 2 : at + 6] = bytes.fromhex("202401FF")
    with pytest.raises(DecodeError) as dec:
        EF05.decode(bytes(raw))
    assert dec.value.field == "issue_date"
    assert "date has 6 digits, expected 8" in dec.value.reason


def test_record_file_size_and_vectors() -> None:
    assert EF05.struct.sizeof() == len(EF05.vectors[0][1]) == 64
    again = record_file(EF05.name, EF05.spec, EF05.model, EF05.records, vectors=EF05.vectors)
    assert again.vectors == EF05.vectors


def test_override_names_every_unknown_record() -> None:
    with pytest.raises(UsageError) as exc:
        override(EF05_RECORDS, {"zz": {}, "aa": {}})
    assert str(exc.value) == "override names unknown records: aa, zz"


def test_pboc_9f10_model_refusals() -> None:
    for make, field, reason in (
        (
            lambda: pboc_ac.PbocIad(1, 1, bytes(3), 1, b""),
            "idd",
            "issuer-discretionary data is 1-255 bytes",
        ),
        (
            lambda: pboc_ac.EcIdd(10_000_000_000, bytes(4)),
            "balance",
            "the EC balance in 9F10 is 0..9999999999 fen",
        ),
    ):
        with pytest.raises(EncodingError) as exc:
            make()
        assert (exc.value.field, exc.value.reason) == (field, reason)
    pboc_ac.EcIdd(9_999_999_999, bytes(4))  # the upper edge is allowed
    with pytest.raises(DataError) as err:
        pboc_ac.ac_input(b"", {}, b"", b"\x00", b"\x00\x01")
    assert (err.value.field, err.value.reason) == (
        "82/9F36",
        "the cryptogram input needs a 2-byte AIP and ATC",
    )
