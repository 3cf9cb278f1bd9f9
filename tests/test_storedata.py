"""STORE DATA builder and card-side reassembly: layout vectors, rules and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec.apdu import CommandAPDU
from cardperso.codec.dgi import encode_dgi
from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import DataError, UsageError
from cardperso.protocol.scp02 import Scp02Card, Scp02Host
from cardperso.protocol.scp03 import Scp03Card, Scp03Host
from cardperso.protocol.storedata import (
    DgiItem,
    PaddingRule,
    ReceivedDgi,
    StoreDataConventions,
    StoreDataReceiver,
    StoreDataRejected,
    build_store_data,
)

H = bytes.fromhex


def test_p1_last_bit_and_sequence_like_gppro() -> None:
    # Mirrors GlobalPlatformPro TestStoreData.testBuildStoreDataCommands: three blocks, only
    # the last has P1 bit 8; CLA 80, INS E2. Here P2 is the sequence number 00, 01, 02.
    items = [DgiItem(0x0101, H("0102")), DgiItem(0x0102, H("0304")), DgiItem(0x0103, H("0506"))]
    apdus = [
        CommandAPDU.parse(a) for a in build_store_data(items, StoreDataConventions(pack=False))
    ]
    assert [(a.cla, a.ins, a.p1, a.p2) for a in apdus] == [
        (0x80, 0xE2, 0x00, 0x00),
        (0x80, 0xE2, 0x00, 0x01),
        (0x80, 0xE2, 0x80, 0x02),
    ]
    assert apdus[0].data == H("0101020102")


def test_packing_and_dgi_format_bits() -> None:
    # Hand-built: two clear DGIs pack into one command, the encrypted one goes alone.
    items = [
        DgiItem(0x0101, H("7003570100")),
        DgiItem(0x9102, H("6F00")),
        DgiItem(0x8000, bytes(16), encrypted=True),
    ]
    apdus = build_store_data(
        items, StoreDataConventions(dgi_format=0x08), encrypt=lambda d: cp.xor(d, b"\xaa" * len(d))
    )
    assert apdus == [
        H("80E208000D01010570035701009102026F00"),
        H("80E2E80113800010") + b"\xaa" * 16,
    ]


def test_large_dgi_is_split_and_reassembled() -> None:
    big = bytes(range(256)) * 2  # 512 bytes -> DGI header FF 0200
    items = [DgiItem(0x0101, H("01")), DgiItem(0x0201, big), DgiItem(0x0301, H("02"))]
    apdus = build_store_data(items)
    assert [len(CommandAPDU.parse(a).data) for a in apdus] == [239, 239, 47]
    rx = StoreDataReceiver()
    got = [d for a in apdus for d in rx.feed(a)]
    assert got == [
        ReceivedDgi(0x0101, H("01"), False),
        ReceivedDgi(0x0201, big, False),
        ReceivedDgi(0x0301, H("02"), False),
    ]
    assert rx.finished


@pytest.mark.parametrize(
    ("rule", "length", "padded"),
    [
        ("pad80_if_unaligned", 16, 16),  # aligned keys are sent unpadded
        ("pad80_if_unaligned", 9, 16),
        ("pad80", 16, 24),  # RSA CRT parts on some applets: always padded
        ("none", 48, 48),  # 8000 (three 16-byte keys)
    ],
)
def test_encrypted_padding_rules(rule: PaddingRule, length: int, padded: int) -> None:
    seen: list[bytes] = []

    def enc(d: bytes) -> bytes:
        seen.append(d)
        return d

    conv = StoreDataConventions(padding_overrides={0x8201: rule})
    build_store_data([DgiItem(0x8201, bytes(length), encrypted=True)], conv, enc)
    # ISO 9797-1 method 2 (80 00..) when padded; the clear value itself otherwise
    pad = b"\x80" + bytes(padded - length - 1) if padded > length else b""
    assert seen == [bytes(length) + pad]


def test_builder_errors() -> None:
    with pytest.raises(DataError) as info:
        build_store_data(
            [DgiItem(0x8000, bytes(15), encrypted=True)],
            StoreDataConventions(padding="none"),
            lambda d: d,
        )
    assert info.value.field == "DGI 8000"
    with pytest.raises(UsageError):
        build_store_data([DgiItem(0x8000, bytes(16), encrypted=True)])
    with pytest.raises(UsageError):
        build_store_data([])
    with pytest.raises(UsageError):
        StoreDataConventions(max_data=256)


def test_receiver_rejects_and_stores_nothing() -> None:
    apdus = build_store_data([DgiItem(0x0101, bytes(300)), DgiItem(0x0102, H("01"))])
    rx = StoreDataReceiver()
    with pytest.raises(StoreDataRejected) as info:
        rx.feed(apdus[1])  # sequence 01 first
    assert info.value.sw == 0x6A86
    assert rx.feed(apdus[0]) == []
    # a last block that leaves the DGI incomplete is refused, and the state is unchanged
    truncated = CommandAPDU.parse(apdus[1])
    with pytest.raises(StoreDataRejected) as info:
        rx.feed(CommandAPDU(0x80, 0xE2, 0x80, 0x01, truncated.data[:-5]).to_bytes())
    assert info.value.sw == 0x6A80
    assert [d.dgi for d in rx.feed(apdus[1])] == [0x0101, 0x0102]
    with pytest.raises(StoreDataRejected) as info:
        rx.feed(apdus[1])
    assert info.value.sw == 0x6985
    with pytest.raises(StoreDataRejected) as info:
        StoreDataReceiver().feed(H("80E2100000"))
    assert info.value.sw in (0x6A86, 0x6700)


def test_repr_hides_data() -> None:
    assert "4041" not in repr(DgiItem(0x8000, H("40414243"), True))


_ITEMS = st.lists(
    st.builds(
        DgiItem,
        dgi=st.integers(0, 0xFFFF),
        data=st.binary(max_size=600),
        encrypted=st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(
    _ITEMS,
    st.integers(16, 255),
    st.sampled_from([0x00, 0x08]),
    st.booleans(),
    st.sampled_from([8, 16]),
    st.integers(0, 255),
)
def test_build_then_receive_roundtrip(
    items: list[DgiItem], max_data: int, fmt: int, pack: bool, block: int, first: int
) -> None:
    conv = StoreDataConventions(max_data=max_data, dgi_format=fmt, pack=pack, block_size=block)

    def enc(d: bytes) -> bytes:  # any length-preserving "cipher" shows where data went
        return cp.xor(d, b"\x5a" * len(d))

    apdus = build_store_data(items, conv, enc, first_sequence=first)
    cmds = [CommandAPDU.parse(a) for a in apdus]
    assert all(0 < len(c.data) <= max_data for c in cmds)
    assert [c.p2 for c in cmds] == [(first + n) % 256 for n in range(len(cmds))]
    assert [bool(c.p1 & 0x80) for c in cmds] == [False] * (len(cmds) - 1) + [True]
    assert all(c.p1 & 0x08 == fmt for c in cmds)
    rx = StoreDataReceiver(first)
    got = [d for a in apdus for d in rx.feed(a)]
    assert rx.finished
    expected = []
    for it in items:
        if it.encrypted:
            padded = (
                cp.pad_method2(it.data, block) if len(it.data) % block or not it.data else it.data
            )
            expected.append(ReceivedDgi(it.dgi, enc(padded), True))
        else:
            expected.append(ReceivedDgi(it.dgi, it.data, False))
    assert got == expected
    # the commands carry exactly the DGI stream
    stream = b"".join(c.data for c in cmds)
    assert stream == b"".join(encode_dgi(d.dgi, d.data) for d in expected)


GP_KEY = H("404142434445464748494A4B4C4D4E4F")


@pytest.mark.parametrize("scp", [2, 3])
def test_personalization_through_a_secure_channel(scp: int) -> None:
    # Host STORE DATA under C-DEC + C-MAC -> card unwrap -> reassembly -> DEK decryption.
    keys8000 = bytes(range(48))
    if scp == 2:
        static = gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY)
        host: Scp02Host | Scp03Host = Scp02Host(static, 0x03)
        card: Scp02Card | Scp03Card = Scp02Card(static, 0xFF, 7)
        block = 8
    else:
        static = gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY, "AES")
        host, card, block = Scp03Host(static, 0x03), Scp03Card(static, 0x30), 16
    host.process_external_authenticate_response(
        card.external_authenticate(
            host.process_initialize_update_response(
                card.initialize_update(host.initialize_update())
            )
        )
    )
    items = [
        DgiItem(0x0101, H("70") + bytes([200]) + bytes(200)),
        DgiItem(0x8000, keys8000, encrypted=True),
        DgiItem(0x9000, H("112233445566778899")),
    ]
    apdus = build_store_data(items, StoreDataConventions(block_size=block), host.encrypt_dgi_data)
    rx = StoreDataReceiver()
    got = []
    for a in apdus:
        wrapped = host.wrap(a)
        assert len(CommandAPDU.parse(wrapped).data) <= 255
        got += rx.feed(card.unwrap_command(wrapped))
    assert [(d.dgi, d.encrypted) for d in got] == [(0x0101, False), (0x8000, True), (0x9000, False)]
    assert card.decrypt_dgi_data(got[1].data) == keys8000
