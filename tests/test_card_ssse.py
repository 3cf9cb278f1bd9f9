"""The SSSE application: personalization through STORE DATA, then reads, authentication, PIN."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card.ssse import SSSE_NAME
from cardperso.codec import tlv
from cardperso.crypto import primitives as cp
from cardperso.crypto import ssse as ssse_crypto
from test_card_support import EF05, EF06, SSSE_KEYS, Host, install_ssse, new_card, ssse_dgis

SELECT_SSSE = bytes((0x00, 0xA4, 0x04, 0x00, 0x0F)) + SSSE_NAME


def personalized(tmp_path: Path, algorithm: int = 0x03, generation: int = 3) -> Host:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_ssse(host)
    host.personalize(SSSE_NAME, ssse_dgis(algorithm, generation))
    return host


def authenticate_external(host: Host, key_id: int, alg: str, size: int | None = None) -> int:
    """EXTERNAL AUTHENTICATE: the challenge padded to one block (16 bytes SM4, 8 bytes 3DES)."""
    block = cp.BLOCK_SIZE[alg]
    size = size or block
    challenge = host.ok("0084000008")
    padded = challenge.ljust(max(size, block), b"\x00")
    cryptogram = cp.ecb_encrypt(alg, SSSE_KEYS[key_id], padded)[:size]
    return host.send(bytes((0, 0x82, 0, key_id, size)) + cryptogram)[1]


@pytest.mark.parametrize(
    ("algorithm", "alg", "good", "bad"), [(0x03, "SM4", 16, 8), (0x01, "3DES", 8, 16)]
)
def test_external_authentication_is_one_cipher_block(
    tmp_path: Path, algorithm: int, alg: str, good: int, bad: int
) -> None:
    """A 3DES (second-generation) card takes an 8-byte cryptogram, an SM4 card 16 bytes."""
    host = personalized(tmp_path, algorithm)
    host.ok(SELECT_SSSE)
    assert authenticate_external(host, 0x0A, alg, bad) == 0x6700
    assert authenticate_external(host, 0x0A, alg, good) == 0x9000


def open_reads(host: Host, alg: str) -> None:
    factor, random = bytes.fromhex("0102030405060708"), cp.random_bytes(8)
    answer = host.ok(b"\x00\x88\x00\x00\x10" + factor + random)
    # the terminal checks the card: E(diversify(IRK, factor), random || 00x8)
    kd = ssse_crypto.diversify_one(SSSE_KEYS[0x01], alg, factor)
    assert answer == cp.ecb_encrypt(alg, kd, random + bytes(8))
    assert authenticate_external(host, 0x0A, alg) == 0x9000


def test_select_fci_has_algorithm_indicator(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    fci = tlv.parse_one(host.ok(SELECT_SSSE))
    assert fci.tag == 0x6F
    assert tlv.find([fci], 0x84).value == SSSE_NAME  # type: ignore[union-attr]
    assert tlv.find([fci], 0x9F0C).value == bytes.fromhex("860103")  # type: ignore[union-attr]


@pytest.mark.parametrize(("algorithm", "alg"), [(0x03, "SM4"), (0x01, "3DES")])
def test_third_generation_reads_need_internal_and_external_auth(
    tmp_path: Path, algorithm: int, alg: str
) -> None:
    host = personalized(tmp_path, algorithm)
    host.ok(SELECT_SSSE)
    assert host.send("00B2012C00")[1] == 0x6982
    open_reads(host, alg)
    for rec, expected in enumerate(EF05, 1):
        assert host.ok(bytes((0, 0xB2, rec, 0x2C, 0))) == expected
    for rec, expected in enumerate(EF06, 1):
        assert host.ok(bytes((0, 0xB2, rec, 0x34, 0))) == expected
    # by tag: 0x09 (name) in EF06, P2 = SFI<<3
    assert host.ok("00B2093000") == EF06[1]
    assert host.send("00B2082C00")[1] == 0x6A83  # tag 08 is not in EF05
    assert host.send("00B2092C00")[1] == 0x6A83
    # EF0D by number
    assert host.ok("00B2016C00")[0] == 0xEA
    # reselecting drops the authentication
    host.ok(SELECT_SSSE)
    assert host.send("00B2012C00")[1] == 0x6982


def test_second_generation_reads_are_open(tmp_path: Path) -> None:
    host = personalized(tmp_path, 0x01, generation=2)
    host.ok(SELECT_SSSE)
    assert host.ok("00B2072C00") == EF05[6]
    host.ok("00A4020C02EF06")
    assert host.ok("00B2010400") == EF06[0]  # SFI 0 = current EF


def test_wrong_external_authentication(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_SSSE)
    assert host.send(b"\x00\x82\x00\x0a\x10" + bytes(16))[1] == 0x6985  # no challenge
    host.ok("0084000008")
    assert host.send(b"\x00\x82\x00\x0a\x10" + bytes(16))[1] == 0x6300
    assert host.send(b"\x00\x82\x00\x0a\x10" + bytes(16))[1] == 0x6985  # challenge used up
    host.ok("0084000008")
    assert host.send(b"\x00\x82\x00\x0b\x10" + bytes(16))[1] == 0x6A88  # no key 0B


def test_update_record_guarded_by_update_key(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    card = host.card
    host.ok(SELECT_SSSE)
    new_gender = bytes.fromhex("0A0132")
    assert host.send(b"\x00\xdc\x04\x34\x03" + new_gender)[1] == 0x6982
    assert authenticate_external(host, 0x0D, "SM4") == 0x9000  # EF0D key: not enough
    assert host.send(b"\x00\xdc\x04\x34\x03" + new_gender)[1] == 0x6982
    assert authenticate_external(host, 0x04, "SM4") == 0x9000
    assert host.send(b"\x00\xdc\x04\x34\x03" + new_gender)[1] == 0x9000
    assert host.send(b"\x00\xdc\x04\x34\x04" + bytes.fromhex("0A023132"))[1] == 0x6700
    assert host.send(b"\x00\xdc\x04\x34\x03" + bytes.fromhex("0B0132"))[1] == 0x6A80
    assert card.state.ssse.records["0604"] == new_gender
    # update by tag
    assert host.send(b"\x00\xdc\x0a\x30\x03" + bytes.fromhex("0A0131"))[1] == 0x9000
    assert card.state.ssse.records["0604"] == bytes.fromhex("0A0131")


def test_pin_verify_change_and_block(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    card = host.card
    host.ok(SELECT_SSSE)
    assert host.send("0020000000")[1] == 0x63C3
    assert host.send("0020000003123456")[1] == 0x9000
    assert host.send("805E010007123456FF654321")[1] == 0x9000
    assert host.send("0020000003123456")[1] == 0x63C2
    assert host.send("0020000003654321")[1] == 0x9000
    assert card.state.ssse.pin_tries_left == 3
    for left in (2, 1, 0):
        assert host.send("0020000003000000")[1] == 0x63C0 | left
    assert host.send("0020000003654321")[1] == 0x6983
    # the counter is persistent
    card.power_off()
    card.power_on()
    host.ok(SELECT_SSSE)
    assert host.send("0020000003654321")[1] == 0x6983


def test_bad_pin_encodings(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_SSSE)
    assert host.send("00200000021A34")[1] == 0x6A80
    assert host.send("805E010003123456")[1] == 0x6A80  # no FF separator
