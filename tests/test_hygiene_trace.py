"""The PC/SC APDU trace shows no personal data (issue 5): responses to READ RECORD / READ BINARY
(the card's records: identity number, name) show their length and status word only, also when
a T=0 card hands the record over in GET RESPONSE pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.devices.pcsc import ApduTrace, PcscTransport, redact_response
from fixtures_pcsc import LabSlot, T0Card

SSN = "11010119900307663X"  # synthetic (region 110101, 1990-03-07)
EF06_RECORD = b"\x08\x12" + SSN.encode()  # SSSE EF06 record 1 as READ RECORD returns it
READ_EF06 = bytes.fromhex("00B2013400")


def test_record_responses_show_length_and_status_only() -> None:
    assert redact_response(READ_EF06, EF06_RECORD + b"\x90\x00") == "<20 bytes of records> 9000"
    assert redact_response(bytes.fromhex("00B0000000"), b"\x01\x02\x90\x00") == (
        "<2 bytes of records> 9000"
    )
    assert redact_response(READ_EF06, b"\x6a\x83") == "6A83"  # no record: the SW alone
    select = bytes.fromhex("00A404000AA000000151000000")
    assert redact_response(select, b"\x6f\x00\x90\x00") == "6F009000"  # other answers stay


@given(
    cla=st.sampled_from([0x00, 0x04, 0x80, 0x84]),
    ins=st.sampled_from([0xB0, 0xB1, 0xB2, 0xB3]),
    record=st.binary(min_size=1, max_size=256),
)
def test_no_byte_of_a_record_reaches_the_trace(cla: int, ins: int, record: bytes) -> None:
    text = redact_response(bytes([cla, ins, 1, 0x34, 0]), record + b"\x90\x00")
    assert text == f"<{len(record)} bytes of records> 9000"


class T0RecordCard(T0Card):
    """Answers READ RECORD with ``61 xx`` and the record in GET RESPONSE pieces (T=0)."""

    def answer(self, apdu: bytes) -> bytes:
        if apdu[1] == 0xB2:
            self._pending = EF06_RECORD
            return bytes([0x61, 7])
        if apdu[1] == 0xC0:
            chunk, self._pending = self._pending[: apdu[4]], self._pending[apdu[4] :]
            return chunk + (
                bytes([0x61, min(7, len(self._pending))]) if self._pending else b"\x90\x00"
            )
        return super().answer(apdu)


@pytest.mark.pcsc
def test_get_response_pieces_of_a_record_are_redacted_too(pcsc_slot: LabSlot) -> None:
    pcsc_slot.insert(T0RecordCard())
    traces: list[ApduTrace] = []
    with PcscTransport(pcsc_slot.name, trace=traces.append) as t:
        assert t.transmit(READ_EF06) == EF06_RECORD + b"\x90\x00"  # the caller gets the record
    assert [x.command[:8] for x in traces] == ["00B20134", "00C00000", "00C00000", "00C00000"]
    shown = "\n".join(str(x) for x in traces)
    assert SSN.encode().hex().upper() not in shown
    assert SSN.encode()[:7].hex().upper() not in shown  # not even one GET RESPONSE piece
    assert [x.response for x in traces] == [
        "6107",
        "<7 bytes of records> 6107",
        "<7 bytes of records> 6106",
        "<6 bytes of records> 9000",
    ]
