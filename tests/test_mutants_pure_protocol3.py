"""What the mutation run of 5 December 2026 over cardperso.protocol (the seeded sample of 250
on 5bd2701) left: the native-COS line protection's refusals by their exact text, the PIN
length bounds of WRITE KEY data and the versioned key types; STORE DATA packing a DGI of
exactly one command's size into a command of its own, a receiver that takes BER-TLV format
STORE DATA when told to, and the refusal of application-dependent encryption bits (issue 18)."""

from __future__ import annotations

import pytest

from cardperso.codec.dgi import encode_dgi
from cardperso.errors import DecodeError, MacMismatch, UsageError
from cardperso.protocol import fmcos
from cardperso.protocol.storedata import (
    DgiItem,
    StoreDataConventions,
    StoreDataReceiver,
    StoreDataRejected,
    build_store_data,
)

H = bytes.fromhex
KEY16 = H("0123456789ABCDEFFEDCBA9876543210")


def test_decrypt_data_refusals() -> None:
    with pytest.raises(DecodeError) as exc:
        fmcos.decrypt_data("3DES", KEY16, bytes(7))
    assert exc.value.reason == "encrypted data is not a whole number of blocks"
    # a whole block whose length byte claims more than it holds: 05 'ab' 80 00 00 00 00
    from cardperso.crypto import primitives as cp

    bad = cp.ecb_encrypt("3DES", KEY16, H("05616280") + bytes(4))
    with pytest.raises(DecodeError) as exc:
        fmcos.decrypt_data("3DES", KEY16, bad)
    assert exc.value.reason == "the length byte does not match the encrypted data"


def test_protect_and_unprotect_refusals() -> None:
    with pytest.raises(UsageError) as exc:
        fmcos.protect(H("04D68200"), bytes(252), "3DES", KEY16, bytes(8), encrypt=False)
    assert str(exc.value) == "the protected data does not fit a short APDU"
    apdu = fmcos.protect(H("04D68200"), bytes(251), "3DES", KEY16, bytes(8), encrypt=False)
    assert apdu[4] == 255 and len(apdu) == 5 + 255
    data = bytearray(apdu[5:])
    data[-1] ^= 1
    with pytest.raises(MacMismatch) as mexc:
        fmcos.unprotect(H("04D68200"), bytes(data), "3DES", KEY16, bytes(8), encrypted=False)
    assert str(mexc.value) == "line-protection MAC does not verify"


def test_write_key_pin_lengths_and_versioned_types() -> None:
    def pin(n: int) -> bytes:
        return bytes((0x3A, 0xF0, 0xEF, 0x01, 0x33)) + bytes(range(1, n + 1))

    assert fmcos.decode_key(pin(2)).value == H("0102")
    assert fmcos.decode_key(pin(8)).value == bytes(range(1, 9))
    for n in (1, 9):
        with pytest.raises(DecodeError) as exc:
            fmcos.decode_key(pin(n))
        assert exc.value.reason == "a PIN is 2-8 bytes"
    # the two top bits of the type byte are flags: the type is the low six
    assert [t for t in range(256) if fmcos.versioned(t)] == [
        t for t in range(256) if t & 0x3F in (0x30, 0x31, 0x32, 0x34, 0x3C, 0x3D, 0x3E, 0x3F)
    ]
    assert fmcos.versioned(0x30) and fmcos.versioned(0xF0) and not fmcos.versioned(0x3A)


def test_a_dgi_of_one_commands_size_starts_its_own_command() -> None:
    """Packing: a DGI that fits no command's remaining room but exactly a whole command goes
    to a new command whole, not split over the rest of the current one."""
    conv = StoreDataConventions(max_data=32, pack=True)
    small = DgiItem(0x0101, b"\x11" * 4)  # 7 bytes with its header
    big = DgiItem(0x0202, b"\x22" * 29)  # 32 bytes with its header: one whole command
    apdus = build_store_data([small, big], conv)
    assert [a[5:] for a in apdus] == [encode_dgi(0x0101, small.data), encode_dgi(0x0202, big.data)]
    assert [a[2] for a in apdus] == [0x00, 0x80]


def test_the_receiver_takes_ber_tlv_format_only_when_told_to() -> None:
    cmd = bytes((0x80, 0xE2, 0x90, 0x00, 0x04)) + H("01010101")  # P1: last, BER-TLV format
    with pytest.raises(StoreDataRejected) as exc:
        StoreDataReceiver().feed(cmd)
    assert exc.value.sw == 0x6A86
    got = StoreDataReceiver(accept_ber_tlv=True).feed(cmd)
    assert [(d.dgi, d.data) for d in got] == [(0x0101, b"\x01")]
    odd = bytes((0x80, 0xE2, 0xA0, 0x00, 0x04)) + H("01010101")  # P1 bits 6-5 = 01
    with pytest.raises(StoreDataRejected) as exc:
        StoreDataReceiver().feed(odd)
    assert exc.value.sw == 0x6A86
    assert exc.value.reason == (
        "application-dependent encryption bits are not supported (card answers 6A86)"
    )
