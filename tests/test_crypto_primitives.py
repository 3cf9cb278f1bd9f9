"""Block ciphers, padding, MACs and check values against published vectors, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import openssl_cli as ossl
from cardperso.crypto import primitives as cp
from cardperso.errors import MacMismatch, UsageError

H = bytes.fromhex


# -- ciphers ---------------------------------------------------------------------------------


def test_sm4_gbt32907_example() -> None:
    # GB/T 32907-2016 appendix A, example 1 (also GM/T 0002-2012): key = plaintext.
    key = H("0123456789ABCDEFFEDCBA9876543210")
    assert cp.ecb_encrypt("SM4", key, key) == H("681EDF34D206965E86B3E94F536E4246")
    assert cp.ecb_decrypt("SM4", key, H("681EDF34D206965E86B3E94F536E4246")) == key


def test_tdes_sp800_67_example() -> None:
    # NIST SP 800-67 Rev. 1, appendix B: three-key TDEA ECB, "The qufck brown fox jump".
    key = H("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123")
    ct = H("A826FD8CE53B855FCCE21C8112256FE668D5C05DD9B6B900")
    assert cp.ecb_encrypt("3DES", key, b"The qufck brown fox jump") == ct
    assert cp.ecb_decrypt("3DES", key, ct) == b"The qufck brown fox jump"


@pytest.mark.parametrize(
    ("key", "pt", "ct"),
    [
        # FIPS 81 appendix B (single DES = K1 = K2 = K3): "Now is t".
        ("0123456789ABCDEF", b"Now is t".hex(), "3FA40E8A984D4815"),
        # The classic DES worked example (J. Orlin Grabbe, "The DES Algorithm Illustrated").
        ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),
    ],
)
def test_single_des_vectors(key: str, pt: str, ct: str) -> None:
    assert cp.ecb_encrypt("3DES", H(key), H(pt)) == H(ct)


def test_aes_fips197_appendix_c1() -> None:
    # FIPS 197 appendix C.1 (AES-128).
    key = H("000102030405060708090a0b0c0d0e0f")
    assert cp.ecb_encrypt("AES", key, H("00112233445566778899aabbccddeeff")) == H(
        "69c4e0d86a7b0430d8cdb78070b4c55a"
    )


# draft-ribose-cfrg-sm4-10 (the SM4 Internet-Draft), appendix A.2: the two example keys, the
# plaintext AAAAAAAABBBBBBBB CCCCCCCCDDDDDDDD EEEEEEEEFFFFFFFF AAAAAAAABBBBBBBB and, for CBC, the
# IV 000102..0F.
_SM4_K1 = H("0123456789ABCDEFFEDCBA9876543210")
_SM4_K2 = H("FEDCBA98765432100123456789ABCDEF")
_SM4_PT = H("AAAAAAAABBBBBBBBCCCCCCCCDDDDDDDDEEEEEEEEFFFFFFFFAAAAAAAABBBBBBBB")
_SM4_IV = H("000102030405060708090A0B0C0D0E0F")


@pytest.mark.parametrize(
    ("key", "ecb", "cbc"),
    [
        # A.2.1.1 / A.2.2.1 (example 1) and A.2.1.2 / A.2.2.2 (example 2).
        (
            _SM4_K1,
            "5EC8143DE509CFF7B5179F8F474B86192F1D305A7FB17DF985F81C8482192304",
            "78EBB11CC40B0A48312AAEB2040244CB4CB7016951909226979B0D15DC6A8F6D",
        ),
        (
            _SM4_K2,
            "C5876897E4A59BBBA72A10C83872245B12DD90BC2D200692B529A4155AC9E600",
            "0D3A6DDC2D21C698857215587B7BB59A91F2C147911A4144665E1FA1D40BAE38",
        ),
    ],
)
def test_sm4_ecb_cbc_draft_ribose(key: bytes, ecb: str, cbc: str) -> None:
    assert cp.ecb_encrypt("SM4", key, _SM4_PT) == H(ecb)
    assert cp.cbc_encrypt("SM4", key, _SM4_PT, _SM4_IV) == H(cbc)
    assert cp.cbc_decrypt("SM4", key, H(cbc), _SM4_IV) == _SM4_PT
    # MAC algorithm 1 is the last CBC block: with aligned data and padding method 1 (no pad
    # block added) it is the published ciphertext's last block.
    assert cp.mac_algorithm1("SM4", key, _SM4_PT, padding=1, iv=_SM4_IV) == H(cbc)[-16:]


def test_aes_cbc_sp800_38a_f21() -> None:
    # NIST SP 800-38A appendix F.2.1 (CBC-AES128.Encrypt) and F.2.2 (Decrypt).
    key = H("2b7e151628aed2a6abf7158809cf4f3c")
    iv = H("000102030405060708090a0b0c0d0e0f")
    ct = H(
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
    )
    assert cp.cbc_encrypt("AES", key, _NIST_M, iv) == ct
    assert cp.cbc_decrypt("AES", key, ct, iv) == _NIST_M


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 33, 64])
def test_sm4_mac_algorithm1_padding2_openssl(length: int) -> None:
    # Outside implementation: OpenSSL's sm4-cbc (tests/openssl_cli.py) over the method-2
    # padded data, zero IV and the draft's IV; our MAC is the last block.
    data = bytes(range(7, 7 + length))
    padded = data + b"\x80" + bytes(-(length + 1) % 16)
    for iv in (None, _SM4_IV):
        expected = ossl.cbc_mac("sm4-cbc", _SM4_K1, padded, iv)
        assert cp.mac_algorithm1("SM4", _SM4_K1, data, padding=2, iv=iv) == expected


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 32, 40, 64])
def test_sm4_cmac_openssl(length: int) -> None:
    # Outside implementation: `openssl mac -cipher SM4-CBC CMAC` (NIST SP 800-38B with SM4);
    # CMAC's subkeys and last-block rule are pinned for AES by the SP 800-38B examples below.
    data = _SM4_PT[:length] if length <= 32 else _SM4_PT + bytes(range(length - 32))
    assert cp.cmac("SM4", _SM4_K1, data) == ossl.cmac("SM4-CBC", _SM4_K1, data)
    assert cp.cmac("SM4", _SM4_K2, data) == ossl.cmac("SM4-CBC", _SM4_K2, data)


def test_sm4_cmac_recorded_by_hand() -> None:
    # `printf '' | openssl mac -cipher SM4-CBC -macopt hexkey:0123456789ABCDEFFEDCBA9876543210
    # CMAC` with OpenSSL 3.0.19 (27 Jan 2026) printed 29E154322E5C7BD8EE6A25BA549B24BC.
    assert cp.cmac("SM4", _SM4_K1, b"") == H("29E154322E5C7BD8EE6A25BA549B24BC")


def test_bad_key_and_block_lengths() -> None:
    with pytest.raises(UsageError, match=r"3DES key must be 8 or 16 or 24 bytes"):
        cp.ecb_encrypt("3DES", bytes(15), bytes(8))
    with pytest.raises(UsageError, match=r"AES data must be a multiple of 16 bytes"):
        cp.ecb_encrypt("AES", bytes(16), bytes(15))
    with pytest.raises(UsageError, match=r"unknown algorithm 'DES'"):
        cp.ecb_encrypt("DES", bytes(8), bytes(8))


# -- padding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "block", "expected"),
    [
        # psec tests/test_mac.py test_pad_iso_2 (ISO/IEC 9797-1 padding method 2).
        ("1234", 8, "1234800000000000"),
        ("12345678901234", 8, "1234567890123480"),
        ("1234567890123456", 8, "12345678901234568000000000000000"),
        ("", 8, "8000000000000000"),
    ],
)
def test_pad_method2(data: str, block: int, expected: str) -> None:
    assert cp.pad_method2(H(data), block) == H(expected)
    assert cp.unpad_method2(H(expected)) == H(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # psec tests/test_mac.py test_pad_iso_1 (method 1; empty data gives one zero block).
        ("1234", "1234000000000000"),
        ("1234567890123456", "1234567890123456"),
        ("", "0000000000000000"),
    ],
)
def test_pad_method1(data: str, expected: str) -> None:
    assert cp.pad_method1(H(data)) == H(expected)


@pytest.mark.parametrize("bad", ["", "00", "1234", "12348001"])
def test_unpad_method2_rejects(bad: str) -> None:
    with pytest.raises(UsageError, match=r"bad ISO 9797\-1 method 2 padding"):
        cp.unpad_method2(H(bad))


# -- MACs ------------------------------------------------------------------------------------

_KAB = H("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")


@pytest.mark.parametrize(
    ("padding", "mac"),
    # pyemv tests/test_mac.py test_mac_iso9797_3: keys AAAA.. / BBBB.., b"hello world".
    [(1, "78DA3D3DEB48FD4D"), (2, "2BC2D9EDE0CF31F6")],
)
def test_mac_algorithm3_pyemv(padding: int, mac: str) -> None:
    assert cp.mac_algorithm3(_KAB, b"hello world", padding=padding) == H(mac)


@pytest.mark.parametrize(
    ("padding", "mac"),
    # psec tests/test_mac.py test_generate_cbc_mac: 3DES key AAAA..BBBB.., b"hello world".
    [(1, "68D9038F23360DF3"), (2, "32DC341271ACCD00")],
)
def test_mac_algorithm1_psec(padding: int, mac: str) -> None:
    assert cp.mac_algorithm1("3DES", _KAB, b"hello world", padding=padding) == H(mac)


_NIST_M = H(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)


@pytest.mark.parametrize(
    ("key", "mlen", "tag"),
    [
        # NIST SP 800-38B appendix D.1 (AES-128), examples 1-4.
        ("2b7e151628aed2a6abf7158809cf4f3c", 0, "bb1d6929e95937287fa37d129b756746"),
        ("2b7e151628aed2a6abf7158809cf4f3c", 16, "070a16b46b4d4144f79bdd9dd04a287c"),
        ("2b7e151628aed2a6abf7158809cf4f3c", 40, "dfa66747de9ae63030ca32611497c827"),
        ("2b7e151628aed2a6abf7158809cf4f3c", 64, "51f0bebf7e3b9d92fc49741779363cfe"),
        # D.2 (AES-192), examples 5-8.
        ("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 0, "d17ddf46adaacde531cac483de7a9367"),
        (
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            16,
            "9e99a7bf31e710900662f65e617c5184",
        ),
        (
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            40,
            "8a1de5be2eb31aad089a82e6ee908b0e",
        ),
        (
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            64,
            "a1d5df0eed790f794d77589659f39a11",
        ),
        # D.3 (AES-256), examples 9-12.
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            0,
            "028962f61b7bf89efc6b551f4667d983",
        ),
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            16,
            "28a7023f452e8f82bd4bf28d8c37c35c",
        ),
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            40,
            "aaf3d8f1de5640c232f5b169b9c911e6",
        ),
        (
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            64,
            "e1992190549f6ed5696a2c056c315410",
        ),
    ],
)
def test_aes_cmac_sp800_38b(key: str, mlen: int, tag: str) -> None:
    assert cp.cmac("AES", H(key), _NIST_M[:mlen]) == H(tag)


def test_cmac_rejects_des() -> None:
    with pytest.raises(UsageError, match=r"CMAC is provided for AES and SM4"):
        cp.cmac("3DES", _KAB, b"x")


def test_verify_mac_raises_without_leaking() -> None:
    cp.verify_mac(b"\x01\x02", b"\x01\x02")
    with pytest.raises(MacMismatch) as info:
        cp.verify_mac(b"\x01\x02", b"\x01\x03", "C-MAC")
    assert "0103" not in str(info.value) and "C-MAC" in str(info.value)


# -- check values, parity --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "key", "kcv"),
    [
        # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP01: static DEK 404142..4F.
        ("3DES", "404142434445464748494A4B4C4D4E4F", "8BAF47"),
        # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP03: the static AES DEK 4041..4F.
        ("AES", "404142434445464748494A4B4C4D4E4F", "504A77"),
        # pySim tests/unittests/test_globalplatform.py SCP03_KCV_Test (AES, 01 x 16 block).
        ("AES", "000102030405060708090a0b0c0d0e0f", "C35280"),
        ("AES", "101112131415161718191a1b1c1d1e1f", "013808"),
        ("AES", "202122232425262728292a2b2c2d2e2f", "840DE5"),
    ],
)
def test_kcv(algorithm: str, key: str, kcv: str) -> None:
    assert cp.kcv(algorithm, H(key)) == H(kcv)


def test_sm4_kcv_zero_block_convention() -> None:
    # The SM4 check value is SM4(K, 00 x 16), leftmost 3 bytes (no public standard fixes an
    # SM4 KCV; this is the zero-block convention of DES, the one our key files record).
    # Outside value: `openssl enc -sm4-ecb -nopad` of 16 zero bytes, run here.
    for key in (_SM4_K1, _SM4_K2, H("404142434445464748494A4B4C4D4E4F")):
        assert cp.kcv("SM4", key) == ossl.enc("sm4-ecb", key, bytes(16))[:3]
        assert cp.kcv("SM4", key, 16) == ossl.enc("sm4-ecb", key, bytes(16))
    # OpenSSL 3.0.19 by hand: SM4 key 0123..3210 over 00x16 -> 2677F46B09C122CC975533105BD4A22A.
    assert cp.kcv("SM4", _SM4_K1) == H("2677F4")


def test_odd_parity() -> None:
    assert cp.odd_parity(H("0001FEFF")) == H("0101FEFE")
    assert all(bin(b).count("1") % 2 == 1 for b in cp.odd_parity(bytes(range(256))))


def test_secret_key_redacts() -> None:
    key = cp.SecretKey("3DES", H("404142434445464748494A4B4C4D4E4F"), "kmc")
    text = repr(key) + str(key)
    assert "4041" not in text and "8BAF47" in text


# -- properties ------------------------------------------------------------------------------

_ALGS = st.sampled_from(
    [("3DES", 16, 8), ("3DES", 24, 8), ("AES", 16, 16), ("AES", 32, 16), ("SM4", 16, 16)]
)


@given(_ALGS, st.data())
def test_encrypt_decrypt_roundtrip(alg: tuple[str, int, int], data: st.DataObject) -> None:
    name, klen, block = alg
    key = data.draw(st.binary(min_size=klen, max_size=klen))
    nblocks = data.draw(st.integers(min_value=0, max_value=6))
    pt = data.draw(st.binary(min_size=block * nblocks, max_size=block * nblocks))
    iv = data.draw(st.binary(min_size=block, max_size=block))
    assert cp.ecb_decrypt(name, key, cp.ecb_encrypt(name, key, pt)) == pt
    assert cp.cbc_decrypt(name, key, cp.cbc_encrypt(name, key, pt, iv), iv) == pt


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=2).map(lambda i: 8 * i))
def test_pad_method2_roundtrip(data: bytes, block: int) -> None:
    padded = cp.pad_method2(data, block)
    assert len(padded) % block == 0 and len(padded) > len(data)
    assert cp.unpad_method2(padded) == data


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=40), st.data())
def test_mac_verify_and_tamper(key: bytes, msg: bytes, data: st.DataObject) -> None:
    mac = cp.mac_algorithm3(key, msg)
    cp.verify_mac(mac, cp.mac_algorithm3(key, msg))
    i = data.draw(st.integers(min_value=0, max_value=7))
    bad = bytearray(mac)
    bad[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(MacMismatch):
        cp.verify_mac(cp.mac_algorithm3(key, msg), bytes(bad))


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=40))
def test_alg3_equals_alg1_when_halves_equal(k: bytes, msg: bytes) -> None:
    # With K1 = K2 the retail MAC degenerates to single-DES CBC-MAC (ISO/IEC 9797-1 property).
    key = k[:8] + k[:8]
    assert cp.mac_algorithm3(key, msg) == cp.mac_algorithm1("3DES", k[:8], msg)
