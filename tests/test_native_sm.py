"""The native COS's line protection and key records (cardperso.protocol.fmcos).

Vectors:
* line-protection MACs - klks/fmcos-python ``examples/test_mac.py`` (MACs of FMCOS commands with
  their challenges, computed by that library against FM1208 cards; 3DES keys FF×16 and 36×16);
* WRITE KEY data - the FMCOS 2.0 manual's examples as quoted in the public issuance
  walk-throughs (https://blog.csdn.net/wwy__/article/details/82497503 and klks/fmcos-python
  NOTES: ``80 D4 01 00 15 39 F0 F0 AA 33`` + key, ``80 D4 01 00 0D 36 F0 F0 FF 33`` + key,
  ``80 D4 01 00 08 3A F0 EF 11 33 000000``);
* where the documentation gives formats but no numbers (SM4, 3DES with distinct key halves,
  encryption), OpenSSL computes the same MAC / cipher text independently.
"""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.errors import DecodeError, MacMismatch, UsageError
from cardperso.protocol.fmcos import (
    KeyRecord,
    decode_key,
    decrypt_data,
    encode_key,
    encrypt_data,
    line_mac,
    protect,
    unprotect,
)

FF = b"\xff" * 16


@pytest.mark.parametrize(
    ("key", "data", "challenge", "mac"),
    [
        (FF, "04D600001411223344556677889900AABBCCDDEEFF", "44A47DEB", "F2F62231"),
        (FF, "11223344556677889900AABBCCDDEEFF", "D0FE4FB9", "8D318577"),
        (FF, "04B0000004", "D0FE4FB9", "F09C8A19"),
        (
            b"\x36" * 16,
            "04D6950022000122000001FFFF01010000220000000000000620160101205012310000",
            "A3BBCFC8",
            "96E32EF1",
        ),
        (
            FF,
            "04D6850034000122000001FFFF22000000000000060001201610280000000000010001"
            "000000000000000000000000000020501231",
            "88BBE4E3",
            "AE8D8774",
        ),
    ],
)
def test_line_mac_matches_the_published_fmcos_vectors(
    key: bytes, data: str, challenge: str, mac: str
) -> None:
    got = line_mac("3DES", key, bytes.fromhex(data), bytes.fromhex(challenge))
    assert got.hex().upper() == mac


def _openssl(args: list[str], data: bytes) -> bytes:
    return subprocess.run(
        ["openssl", "enc", *args, "-nopad"], input=data, capture_output=True, check=True
    ).stdout


def _pad(data: bytes, block: int) -> bytes:
    data += b"\x80"
    return data + bytes(-len(data) % block)


KEY_3DES = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
KEY_SM4 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@settings(max_examples=5, deadline=None)
@given(data=st.binary(max_size=60), challenge=st.binary(min_size=8, max_size=8))
def test_3des_mac_equals_openssl_retail_mac(data: bytes, challenge: bytes) -> None:
    k1, k2 = KEY_3DES[:8].hex(), KEY_3DES[8:].hex()
    cbc = _openssl(["-des-cbc", "-K", k1, "-iv", challenge.hex(), "-provider", "legacy",
                    "-provider", "default"], _pad(data, 8))[-8:]  # fmt: skip
    step = _openssl(
        ["-d", "-des-ecb", "-K", k2, "-provider", "legacy", "-provider", "default"], cbc
    )
    want = _openssl(["-des-ecb", "-K", k1, "-provider", "legacy", "-provider", "default"], step)
    assert line_mac("3DES", KEY_3DES, data, challenge) == want[:4]


@settings(max_examples=5, deadline=None)
@given(data=st.binary(max_size=60), challenge=st.binary(min_size=4, max_size=8))
def test_sm4_mac_equals_openssl_sm4_cbc(data: bytes, challenge: bytes) -> None:
    if len(challenge) not in (4, 8):
        challenge = challenge[:4]
    iv = challenge.ljust(16, b"\x00")
    want = _openssl(["-sm4-cbc", "-K", KEY_SM4.hex(), "-iv", iv.hex()], _pad(data, 16))[-16:]
    assert line_mac("SM4", KEY_SM4, data, challenge) == want[:4]


@pytest.mark.parametrize(("algorithm", "cipher", "key"), [("SM4", "-sm4-ecb", KEY_SM4),
                                                        ("3DES", "-des-ede-ecb", KEY_3DES)])  # fmt: skip
def test_encryption_equals_openssl_and_round_trips(algorithm: str, cipher: str, key: bytes) -> None:
    data = bytes.fromhex("39F0F0AA33") + bytes(range(16))
    block = 16 if algorithm == "SM4" else 8
    want = _openssl([cipher, "-K", key.hex()], _pad(bytes([len(data)]) + data, block))
    assert encrypt_data(algorithm, key, data) == want
    assert decrypt_data(algorithm, key, want) == data
    bad = bytearray(want)
    bad[-1] ^= 1
    with pytest.raises(DecodeError):
        decrypt_data(algorithm, key, bytes(bad))
    with pytest.raises(DecodeError, match="whole number of blocks"):
        decrypt_data(algorithm, key, want[:-1])


@pytest.mark.parametrize("algorithm", ["SM4", "3DES"])
def test_protect_and_unprotect_refuse_a_wrong_mac(algorithm: str) -> None:
    key = KEY_SM4 if algorithm == "SM4" else KEY_3DES
    challenge = bytes.fromhex("1122334455667788")
    apdu = protect(b"\x84\xd4\x01\x00", b"secret", algorithm, key, challenge, encrypt=True)
    assert apdu[4] == len(apdu) - 5 and b"secret" not in apdu
    assert unprotect(apdu[:4], apdu[5:], algorithm, key, challenge, encrypted=True) == b"secret"
    for i in (5, len(apdu) - 1):  # a changed cipher text or a changed MAC
        bad = bytearray(apdu)
        bad[i] ^= 0x01
        with pytest.raises(MacMismatch):
            unprotect(bytes(bad[:4]), bytes(bad[5:]), algorithm, key, challenge, encrypted=True)
    with pytest.raises(MacMismatch):  # another challenge: a replayed command
        unprotect(apdu[:4], apdu[5:], algorithm, key, bytes(8), encrypted=True)
    with pytest.raises(UsageError, match="CLA 04 or 84"):
        protect(b"\x80\xd4\x01\x00", b"x", algorithm, key, challenge, encrypt=False)


def test_write_key_data_matches_the_manual_examples() -> None:
    key16, key8 = bytes(range(16)), bytes(range(8))
    ext = KeyRecord(0x39, 0xF0, 0xF0, 0xAA, 0x33, key16)
    assert encode_key(ext) == bytes.fromhex("39F0F0AA33") + key16  # Lc 15 = 21 bytes
    assert len(encode_key(ext)) == 0x15
    line = KeyRecord(0x36, 0xF0, 0xF0, 0xFF, 0x33, key8)
    assert encode_key(line) == bytes.fromhex("36F0F0FF33") + key8 and len(encode_key(line)) == 0x0D
    pin = KeyRecord(0x3A, 0xF0, 0x00, 0x11, 0x33, bytes(3))
    assert encode_key(pin) == bytes.fromhex("3AF0EF1133000000"), "a PIN's change byte is EF"
    for record in (ext, line):
        assert decode_key(encode_key(record)) == record


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("39F0F0", "shorter than its attributes"),
        ("50F0F0AA33" + "00" * 16, "unknown key type 50"),
        ("39F0F0AA33" + "00" * 12, "a key is 8 or 16 bytes"),
        ("3AF0EF1133" + "00" * 9, "a PIN is 2-8 bytes"),
        ("36F0F00033" + "00" * 8, "byte 4 of this key type must be FF"),
    ],
)
def test_bad_write_key_data_is_refused(data: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_key(bytes.fromhex(data))
