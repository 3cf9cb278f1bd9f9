"""SSSE internal and external authentication against an outside implementation (issue 18).

No public vector exists for the social-security application's authentication (the key table
is not public; social-security-card.md, "Keys and authentication"). The rules, from that
reference and the 3rd-generation APDUs it quotes:

* INTERNAL AUTHENTICATE ``00 88 00 00 10`` + factor (8) + random (8): the card answers
  ``E(K_d, random || 00 x 8)`` with ``K_d`` the IRK diversified by the factor
  (``E(IRK, f || ~f)`` for SM4, ``E(IRK, f) || E(IRK, ~f)`` for 3DES);
* EXTERNAL AUTHENTICATE after a GET CHALLENGE of 8 bytes carries one cipher block:
  ``00 82 00 <key id> 10`` + ``E(K, challenge || 00 x 8)`` on SM4 (3rd-generation) cards,
  ``00 82 00 <key id> 08`` + ``E(K, challenge)`` on 3DES (2nd-generation) cards (issue 12:
  "8 bytes for 3DES cards").

Both sides are checked: the virtual card (card/ssse.py) and the line's read-back, which
authenticates to the card before reading (chip/verify.py), against a card scripted with
OpenSSL.

The expected values are computed with the OpenSSL command line (tests/openssl_cli.py), a
different implementation from the ``cryptography`` calls of the virtual card, and one answer
is also recorded from a hand run of OpenSSL 3.0.19 so the rule is pinned even if both drift.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import openssl_cli as ossl
from cardperso.card.ssse import SSSE_NAME
from cardperso.chip.model import CardApp, ChipFailure, ChipPlan
from cardperso.chip.transport import drive
from cardperso.chip.verify import verify_ssse
from cardperso.codec.apdu import CommandAPDU
from cardperso.keystore.software import SoftwareKeyStore
from test_card_ssse import SELECT_SSSE, personalized
from test_card_support import EF05, SSSE_KEYS

H = bytes.fromhex
OK = H("9000")
CIPHER = {"SM4": "sm4-ecb", "3DES": "des-ede-ecb"}
IRK, READ_KEY, UPDATE_KEY = SSSE_KEYS[0x01], SSSE_KEYS[0x0A], SSSE_KEYS[0x04]


def _outside_internal(alg: str, factor: bytes, random: bytes) -> bytes:
    cipher = CIPHER[alg]
    k_d = ossl.enc(cipher, IRK, factor + bytes(b ^ 0xFF for b in factor))
    return ossl.enc(cipher, k_d, random + bytes(8))


@pytest.mark.parametrize(("algorithm", "alg"), [(0x03, "SM4"), (0x01, "3DES")])
@pytest.mark.parametrize(
    ("factor", "random"),
    [("0102030405060708", "1122334455667788"), ("26123456FFFFFFFF", "0000000000000000")],
)
def test_internal_authenticate(
    tmp_path: Path, algorithm: int, alg: str, factor: str, random: str
) -> None:
    host = personalized(tmp_path, algorithm)
    host.ok(SELECT_SSSE)
    answer = host.ok("0088000010" + factor + random)
    assert answer == _outside_internal(alg, H(factor), H(random))


def test_internal_authenticate_recorded_by_hand(tmp_path: Path) -> None:
    # OpenSSL 3.0.19 (27 Jan 2026), SM4, IRK 0102..0F10, factor 0102030405060708:
    #   openssl enc -sm4-ecb -K 0102030405060708090A0B0C0D0E0F10 -nopad
    #     over 0102030405060708FEFDFCFBFAF9F8F7 -> K_d 54FA4C1B4FCE7639E8B51413A4AD9A8C
    #   openssl enc -sm4-ecb -K <K_d> -nopad over 11223344556677880000000000000000
    #     -> 848433E5B59457C44D0D5FF3C096B621
    host = personalized(tmp_path, 0x03)
    host.ok(SELECT_SSSE)
    answer = host.ok("00880000100102030405060708" + "1122334455667788")
    assert answer == H("848433E5B59457C44D0D5FF3C096B621")


def _block(alg: str, challenge: bytes) -> bytes:
    """The one cipher block EXTERNAL AUTHENTICATE encrypts: the 8-byte challenge, padded with
    zeros to SM4's 16-byte block; alone on 3DES."""
    return challenge + bytes(8) if alg == "SM4" else challenge


@pytest.mark.parametrize(("algorithm", "alg"), [(0x03, "SM4"), (0x01, "3DES")])
def test_external_authenticate_opens_reads(tmp_path: Path, algorithm: int, alg: str) -> None:
    host = personalized(tmp_path, algorithm)
    host.ok(SELECT_SSSE)
    host.ok("0088000010" + "0102030405060708" + "1122334455667788")
    challenge = host.ok("0084000008")
    cryptogram = ossl.enc(CIPHER[alg], READ_KEY, _block(alg, challenge))
    assert host.send("008200" + "0A" + f"{len(cryptogram):02X}" + cryptogram.hex())[1] == 0x9000
    assert host.ok("00B2012C00") == EF05[0]


@pytest.mark.parametrize(("algorithm", "alg"), [(0x03, "SM4"), (0x01, "3DES")])
def test_external_authenticate_refuses_another_key(
    tmp_path: Path, algorithm: int, alg: str
) -> None:
    host = personalized(tmp_path, algorithm)
    host.ok(SELECT_SSSE)
    host.ok("0088000010" + "0102030405060708" + "1122334455667788")
    challenge = host.ok("0084000008")
    wrong = ossl.enc(CIPHER[alg], UPDATE_KEY, _block(alg, challenge))  # key 04, not the read key
    assert host.send("008200" + "0A" + f"{len(wrong):02X}" + wrong.hex())[1] == 0x6300
    assert host.send("00B2012C00")[1] == 0x6982


# -- the host side: the line's read-back (chip/verify.py) against a card scripted with OpenSSL


def _script(alg: str, irk: bytes, seen: list[str]) -> Callable[[bytes], bytes]:
    """A card that answers from OpenSSL: INTERNAL AUTHENTICATE under ``irk``, EXTERNAL
    AUTHENTICATE accepted only for the cryptogram OpenSSL computes under the read key."""
    challenge = H("0F1E2D3C4B5A6978")

    def respond(raw: bytes) -> bytes:
        cmd = CommandAPDU.parse(raw)
        if cmd.ins == 0x88:
            factor, random = cmd.data[:8], cmd.data[8:]
            k_d = ossl.enc(CIPHER[alg], irk, factor + bytes(b ^ 0xFF for b in factor))
            seen.append("internal")
            return ossl.enc(CIPHER[alg], k_d, random + bytes(8)) + OK
        if cmd.ins == 0x84:
            return challenge + OK
        if cmd.ins == 0x82:
            good = cmd.data == ossl.enc(CIPHER[alg], READ_KEY, _block(alg, challenge))
            seen.append("external" if good else "external refused")
            return OK if good else H("6300")
        return OK

    return respond


def _verify(alg: str, card_irk: bytes, sample_keystore: SoftwareKeyStore) -> list[str]:
    kek = "transport-kek"
    secrets = {0x8F01: IRK, 0x8F0A: READ_KEY}
    app = CardApp(
        "ssse",
        SSSE_NAME,
        tuple((dgi, sample_keystore.wrap(kek, key)) for dgi, key in secrets.items()),
        frozenset(secrets),
    )
    plan = ChipPlan(kmc="gp-kmc", kek=kek, ssse_algorithm=alg)

    seen: list[str] = []
    checks: list[str] = []
    drive(verify_ssse(app, {}, plan, sample_keystore, checks), _script(alg, card_irk, seen))
    return seen + checks


@pytest.mark.parametrize("alg", ["SM4", "3DES"])
def test_line_read_back_authenticates_like_openssl(
    alg: str, sample_keystore: SoftwareKeyStore
) -> None:
    assert _verify(alg, IRK, sample_keystore) == ["internal", "external", "ssse-records"]


@pytest.mark.parametrize("alg", ["SM4", "3DES"])
def test_line_read_back_refuses_a_card_with_another_irk(
    alg: str, sample_keystore: SoftwareKeyStore
) -> None:
    with pytest.raises(ChipFailure, match=r"the card's answer does not verify \(wrong IRK\)"):
        _verify(alg, UPDATE_KEY, sample_keystore)
