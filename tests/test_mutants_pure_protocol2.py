"""What the mutation run of 4 December 2026 (late evening) over cardperso.protocol found
unasserted (issue 18): the session facts a host reports after opening (level, KDD, 3-byte
SCP03 sequence counter), a diversifying key source, SCP02 i=15 (no ICV encryption), the SCP03
C-MAC length edge, and the exact refusals a caller or an operator reads."""

from __future__ import annotations

import pytest

from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.errors import CryptogramMismatch, DecodeError, MacMismatch, UsageError
from cardperso.protocol.channel import C_DEC, C_MAC
from cardperso.protocol.scp02 import Scp02Card, Scp02Host, Scp02Messaging
from cardperso.protocol.scp03 import Scp03Card, Scp03Host, Scp03Messaging

H = bytes.fromhex
KEY = H("404142434445464748494A4B4C4D4E4F")
KDD = H("00112233445566778899")
DES_KEYS = gp.StaticKeys(KEY, KEY, KEY)
AES_KEYS = gp.StaticKeys(KEY, KEY, KEY, "AES")


def _open02(level: int = C_MAC, i: int = 0x55) -> tuple[Scp02Host, Scp02Card]:
    card = Scp02Card(DES_KEYS, 0x20, 7, i, kdd=KDD)
    host = Scp02Host(DES_KEYS, level, i, kvn=0x20)
    ext = host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    host.process_external_authenticate_response(card.external_authenticate(ext))
    return host, card


def _open03(level: int = C_MAC, i: int = 0x70, keys: object = AES_KEYS) -> Scp03Host:
    card = Scp03Card(AES_KEYS, 0x30, i=i, kdd=KDD)
    host = Scp03Host(keys, level)  # type: ignore[arg-type]
    ext = host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    host.process_external_authenticate_response(card.external_authenticate(ext))
    return host


def test_session_facts_after_opening() -> None:
    host02, _ = _open02(C_MAC | C_DEC)
    info = host02.session
    assert info is not None
    assert (info.scp, info.i, info.kvn, info.kdd) == (2, 0x55, 0x20, KDD)
    assert (info.sequence_counter, info.security_level) == (b"\x00\x07", C_MAC | C_DEC)
    host03 = _open03(C_MAC | C_DEC)
    info3 = host03.session
    assert info3 is not None
    assert (info3.scp, info3.i, info3.kdd, info3.security_level) == (3, 0x70, KDD, 0x03)
    # i = 70: the card's 3-byte sequence counter (GP Amendment D 7.1.1), here the first session
    assert info3.sequence_counter == b"\x00\x00\x01"
    assert Scp02Host(DES_KEYS).session is None


def test_a_diversifying_key_source_gets_the_cards_kdd() -> None:
    seen: list[bytes] = []

    def source(kdd: bytes) -> gp.StaticKeys:
        seen.append(kdd)
        return AES_KEYS

    assert _open03(keys=source).is_open
    assert seen == [KDD]


def test_scp02_without_icv_encryption_chains_the_plain_mac() -> None:
    # i = 05 (bit 10 clear): no ICV encryption, so a command's ICV is the previous C-MAC as it
    # is (GP Card Spec E.4.4); i = 15/55 encrypt it (pySim's vectors, test_scp02.py)
    keys = gp.scp02_session_keys(DES_KEYS, b"\x00\x01")
    sm = Scp02Messaging(keys, 0x05, C_MAC)
    first = sm.wrap(CommandAPDU(0x80, 0xE2, 0, 0, b"\x01\x02"))
    second = sm.wrap(CommandAPDU(0x80, 0xE2, 0, 1, b"\x03"))
    header = bytes([0x84, 0xE2, 0, 1, 1 + 8])
    assert second[-8:] == gp.scp02_mac(keys.mac, header + b"\x03", first[-8:])


def test_card_refusals() -> None:
    with pytest.raises(UsageError, match=r"^KDD must be 10 bytes$"):
        Scp02Card(DES_KEYS, 0x20, 1, kdd=bytes(9))
    card = Scp02Card(DES_KEYS, 0x20, 1)
    host = Scp02Host(DES_KEYS)
    host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    # a security level the card does not support: 6A86 (incorrect P1/P2)
    assert card.external_authenticate(H("8482050010") + bytes(16)) == H("6A86")


def test_i_parameter_range() -> None:
    for bad in (0x100, -1):
        with pytest.raises(UsageError, match=f"^SCP02 i={bad:02X} is not supported"):
            Scp02Host(DES_KEYS, i=bad)


def test_initialize_update_responses_of_the_wrong_length() -> None:
    host = Scp02Host(DES_KEYS)
    host.initialize_update()
    with pytest.raises(
        DecodeError, match=r"^SCP02 INITIALIZE UPDATE response is 27 bytes, expected 28$"
    ):
        host.process_initialize_update_response(bytes(27))
    host3 = Scp03Host(AES_KEYS)
    host3.initialize_update()
    with pytest.raises(
        DecodeError, match=r"^SCP03 INITIALIZE UPDATE response is 30 bytes \(29 or 32\)$"
    ):
        host3.process_initialize_update_response(bytes(30))
    with pytest.raises(UsageError, match=r"^SCP03 security level 04 is not supported$"):
        Scp03Host(AES_KEYS, 0x04)


@pytest.mark.parametrize("version", [2, 3])
def test_wrong_keys_message(version: int) -> None:
    other = gp.StaticKeys(bytes(16), bytes(16), bytes(16), "3DES" if version == 2 else "AES")
    if version == 2:
        card, host = Scp02Card(DES_KEYS, 0x20, 1), Scp02Host(other)
    else:
        card, host = Scp03Card(AES_KEYS, 0x30), Scp03Host(other)  # type: ignore[assignment]
    with pytest.raises(CryptogramMismatch) as info:
        host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    text = str(info.value)
    assert text.startswith(f"SCP0{version} card cryptogram does not verify: wrong keys")
    assert text.endswith("do not retry EXTERNAL AUTHENTICATE with these keys")


def test_scp03_c_mac_length_edge_and_decrypt_refusal() -> None:
    sk = gp.scp03_session_keys(AES_KEYS, bytes(16))
    sm = Scp03Messaging(sk, C_MAC)
    assert len(sm.wrap(CommandAPDU(0x80, 0xE2, 0, 0, bytes(247)))) == 5 + 255
    with pytest.raises(
        UsageError, match=r"^SCP03 command data too long for a short APDU with a C-MAC$"
    ):
        Scp03Messaging(sk, C_MAC).wrap(CommandAPDU(0x80, 0xE2, 0, 0, bytes(248)))
    card_side = Scp03Messaging(sk, C_MAC | C_DEC)
    with pytest.raises(
        MacMismatch, match=r"^encrypted command data is not a whole number of blocks$"
    ):
        card_side._decrypt(bytes(15), response=False)
