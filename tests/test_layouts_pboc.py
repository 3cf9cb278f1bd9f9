"""PBOC layouts: amounts, AFL validation, GPO responses cross-checked with the TLV codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.codec import simpletlv, tlv
from cardperso.errors import DecodeError, EncodingError
from cardperso.layouts import gp, pboc, ssse


def test_amount_bounds() -> None:
    with pytest.raises(EncodingError, match="amount must be an int from 0 to 999999999999 fen"):
        pboc.EcAmount(-1)
    with pytest.raises(EncodingError, match="amount must be an int from 0 to 999999999999 fen"):
        pboc.EcAmount(10**12)


def test_amount_rejects_non_bcd() -> None:
    with pytest.raises(DecodeError) as info:
        pboc.N12_AMOUNT.decode(bytes.fromhex("00000001500A"))
    assert info.value.offset == 5
    assert info.value.field == "fen"


@given(st.integers(0, 999_999_999_999))
def test_amount_round_trip(fen: int) -> None:
    data = pboc.N12_AMOUNT.encode(pboc.EcAmount(fen))
    assert data.hex() == f"{fen:012d}"
    assert pboc.N12_AMOUNT.decode(data).fen == fen


def test_ec_data_object_only_for_ec_tags() -> None:
    with pytest.raises(EncodingError, match="tag 9F36 is not an e-cash amount"):
        pboc.EcDataObject(0x9F36, 1)
    with pytest.raises(DecodeError) as info:
        pboc.EC_DATA_OBJECT.decode(bytes.fromhex("9F3606000000000001"))
    assert info.value.field == "tag"


def test_ec_data_object_is_ber_tlv() -> None:
    for model, data in pboc.EC_DATA_OBJECT.vectors:
        obj = tlv.parse_one(data)
        assert obj.tag == model.tag
        assert obj.value == pboc.N12_AMOUNT.encode(pboc.EcAmount(model.fen))


@pytest.mark.parametrize(
    ("args", "field"),
    [((0, 1, 1, 0), "sfi"), ((31, 1, 1, 0), "sfi"), ((1, 0, 1, 0), "first"),
     ((1, 3, 2, 0), "first"), ((1, 1, 2, 3), "oda_records")],
)  # fmt: skip
def test_afl_entry_validation(args: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(EncodingError) as info:
        pboc.AflEntry(*args)
    assert info.value.field == field


@pytest.mark.parametrize("raw", ["09010100", "08000100", "08020100", "08010102", "00010100"])
def test_afl_entry_rejects_bad_bytes(raw: str) -> None:
    with pytest.raises(DecodeError):
        pboc.AFL_ENTRY.decode(bytes.fromhex(raw))


def test_afl_rejects_partial_entry() -> None:
    _, data = pboc.AFL.vectors[0]
    with pytest.raises(DecodeError) as info:
        pboc.AFL.decode(data + b"\x08\x01")
    assert info.value.offset == len(data)


ENTRIES = st.builds(
    lambda sfi, first, span, oda: pboc.AflEntry(sfi, first, first + span, min(oda, span + 1)),
    st.integers(1, 30),
    st.integers(1, 200),
    st.integers(0, 54),
    st.integers(0, 255),
)


@given(st.lists(ENTRIES, max_size=20).map(tuple), st.binary(min_size=2, max_size=2))
def test_gpo_round_trip_and_tlv_agreement(entries: tuple[pboc.AflEntry, ...], aip: bytes) -> None:
    resp = pboc.GpoResponse(aip, entries)
    afl = pboc.AFL.encode(pboc.Afl(entries))
    f2 = pboc.GPO_RESPONSE_FORMAT2.encode(resp)
    assert pboc.GPO_RESPONSE_FORMAT2.decode(f2) == resp
    # The independent BER-TLV codec sees the same objects.
    outer = tlv.parse_one(f2)
    assert outer.tag == 0x77
    assert [(c.tag, c.value) for c in outer.children or ()] == [(0x82, aip), (0x94, afl)]
    f1 = pboc.GPO_RESPONSE_FORMAT1.encode(resp)
    assert f1 == tlv.encode(0x80, aip + afl)
    assert pboc.GPO_RESPONSE_FORMAT1.decode(f1) == resp


def test_gpo_format2_rejects_extra_objects() -> None:
    _, data = pboc.GPO_RESPONSE_FORMAT2.vectors[0]
    extra = tlv.encode(0x77, tlv.parse_one(data).value + tlv.encode(0x9F36, b"\x00\x01"))
    with pytest.raises(DecodeError, match="gpo_response_format2: expected end of stream"):
        pboc.GPO_RESPONSE_FORMAT2.decode(extra)


@given(st.integers(0, 0xFFFFFF))
def test_ber_length_agrees_with_tlv_codec(n: int) -> None:
    from cardperso.layouts.base import BerLength

    assert BerLength.build(n) == tlv.encode_length(n)
    assert BerLength.parse(tlv.encode_length(n)) == n


def test_key_information_template_agrees_with_tlv_codec() -> None:
    for model, data in gp.KEY_INFORMATION_TEMPLATE.vectors:
        outer = tlv.parse_one(data)
        assert outer.tag == 0xE0
        entries = [c for c in outer.children or () if c.tag == 0xC0]
        assert len(entries) == len(model.keys)
        for entry, key in zip(entries, model.keys):
            assert entry.value[:2] == bytes([key.key_id, key.kvn])


@pytest.mark.parametrize("layout", [ssse.EF05, ssse.EF06, ssse.EF06_V1, ssse.EF0D])
def test_ssse_records_agree_with_simple_tlv_codec(layout: ssse.RecordFile[object]) -> None:
    for model, data in layout.vectors:
        pairs = simpletlv.parse(data)
        assert [t for t, _ in pairs] == [r.tag for r in layout.records]
        assert [len(v) for _, v in pairs] == [r.length for r in layout.records]
        for record, (tag, value) in zip(layout.encode_records(model), pairs):
            assert simpletlv.encode(tag, value) == record


def test_dgi_9104_value_is_the_format2_content() -> None:
    model, f2 = pboc.GPO_RESPONSE_FORMAT2.vectors[0]
    assert tlv.encode(0x77, pboc.GPO_AIP_AFL.encode(model)) == f2


def test_iad_refuses_a_length_byte_that_promises_missing_bytes() -> None:
    from cardperso.layouts import pboc_ac

    # cardperso's former 9F10: IDD length 0A, but only 6 bytes follow
    with pytest.raises(DecodeError):
        pboc_ac.IAD.decode(bytes.fromhex("07010103A00000010A010000000000"))
    with pytest.raises(DecodeError):  # an empty issuer-discretionary part
        pboc_ac.IAD.decode(bytes.fromhex("070101030000000100"))
    with pytest.raises(EncodingError, match="the CVR is 3 bytes"):
        pboc_ac.PbocIad(1, 1, b"\x00", 1)


def test_session_method_and_cvr_follow_the_iad() -> None:
    from cardperso.layouts import pboc_ac

    qpos = bytes.fromhex("07010103A02000010A01000000000013F6C042")
    assert pboc_ac.session_method(qpos) == "pboc"
    assert pboc_ac.iad_cvr(qpos) == bytes.fromhex("03A02000")
    assert pboc_ac.session_method(qpos[:2] + b"\x0a" + qpos[3:]) == "emv-csk"  # CVN 0A
    assert pboc_ac.session_method(qpos[:2] + b"\x17" + qpos[3:]) == "pboc"  # qUICS CVN 17
    assert pboc_ac.session_method(b"") == "emv-csk" and pboc_ac.iad_cvr(b"") == b""
    assert pboc_ac.ec_idd_balance(qpos) == pboc_ac.EcIdd(0, bytes.fromhex("13F6C042"))
    assert pboc_ac.ec_idd_balance(bytes.fromhex("0701010300000001")) is None


def test_ac_input_names_a_missing_minimum_set_value() -> None:
    from cardperso.errors import DataError
    from cardperso.layouts import pboc_ac

    iad = bytes.fromhex("07010103A02000010A01000000000013F6C042")
    values = {tag: bytes(n) for tag, n in pboc_ac.MINIMUM_DATA_SET}
    data = pboc_ac.ac_input(iad, values, b"ignored", b"\x7c\x00", b"\x00\x8d")
    assert data == bytes(29) + bytes.fromhex("7C00008D03A02000")
    del values[0x9F37]
    with pytest.raises(DataError, match=r"the CDOL data lack 9F37 \(4 bytes\)") as info:
        pboc_ac.ac_input(iad, values, b"", b"\x7c\x00", b"\x00\x8d")
    assert info.value.field == "9F37"
    # another CVN: the CDOL data as they are
    other = iad[:2] + b"\x0a" + iad[3:]
    assert pboc_ac.ac_input(other, {}, b"xyz", b"\x7c\x00", b"\x00\x8d") == (
        b"xyz" + bytes.fromhex("7C00008D03A02000")
    )
