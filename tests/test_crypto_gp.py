"""GP per-card key diversification and SCP02/SCP03 key math against public vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import UsageError

H = bytes.fromhex
KEY_16 = H("404142434445464748494A4B4C4D4E4F")
KEY_24 = H("404142434445464748494A4B4C4D4E4F5051525354555657")
KEY_32 = H("404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F")
KDD = H("00010203040506070809")


def _kcvs(keys: gp.StaticKeys) -> tuple[str, str, str]:
    e, m, d = keys.kcvs()
    return e.hex().upper(), m.hex().upper(), d.hex().upper()


def test_emv_diversification_vector() -> None:
    # globalplatform-emv.md table; KCVs from GlobalPlatformPro library/src/test/java/pro/
    # javacard/gp/test/TestPlaintextKeys.java testDiversification_EMV_SCP02.
    keys = gp.diversify_one(KEY_16, KDD, "emv")
    assert keys.enc == H("0EF59FCBF8019B62E62AF6EA20B8BF25")
    assert _kcvs(keys) == ("C33013", "6F4CA6", "BB8179")


def test_visa2_diversification_vector() -> None:
    # GlobalPlatformPro TestPlaintextKeys.testDiversification_VISA2_SCP02.
    assert _kcvs(gp.diversify_one(KEY_16, KDD, "visa2")) == ("2BE598", "58DA38", "3C328E")


@pytest.mark.parametrize(
    ("kmc", "kcvs"),
    [
        # GlobalPlatformPro TestPlaintextKeys.testDiversification_KDF3_SCP03_AES128/192/256.
        (KEY_16, ("E79C05", "D1BD77", "3FDE8C")),
        (KEY_24, ("1DE8EA", "47C00C", "C04D76")),
        (KEY_32, ("2972D2", "036F94", "5D57B8")),
    ],
)
def test_kdf3_diversification_vectors(kmc: bytes, kcvs: tuple[str, str, str]) -> None:
    keys = gp.diversify_one(kmc, KDD, "kdf3")
    assert keys.algorithm == "AES"
    assert _kcvs(keys) == kcvs


def test_kdf3_external_vector() -> None:
    # GlobalPlatformPro library/src/test/java/pro/javacard/gp/TestSCP03.java testKDF3.
    master = H("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
    assert gp.kdf3(master, gp.KEY_ID_ENC, H("D9B1DE5D0362DEDCE4FB")) == H(
        "9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781"
    )


def test_none_and_registry() -> None:
    keys = gp.diversify_one(KEY_16, KDD, "none")
    assert keys.enc == keys.mac == keys.dek == KEY_16
    assert {"emv", "visa2", "kdf3", "none"} <= set(gp.diversification_methods())

    def swapped(kmc: bytes, kdds: object) -> list[gp.StaticKeys]:
        return [gp.StaticKeys(kmc, kmc, kmc)]

    gp.register_diversification("test-swapped", swapped)
    assert gp.diversify(KEY_16, [KDD], "test-swapped")[0].dek == KEY_16
    with pytest.raises(UsageError, match=r"unknown GP key diversification 'no\-such\-method'"):
        gp.diversify(KEY_16, [KDD], "no-such-method")
    with pytest.raises(UsageError, match=r"KDD must be 10 bytes"):
        gp.diversify(KEY_16, [KDD[:9]], "emv")


def test_static_keys_repr_redacts() -> None:
    keys = gp.diversify_one(KEY_16, KDD, "emv")
    text = repr(keys) + str(keys)
    assert "0EF59F" not in text.upper() and "C33013" in text


def test_scp02_session_key_kcvs() -> None:
    # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP02: key 404142..4F, seq 0000.
    sk = gp.scp02_session_keys(gp.StaticKeys(KEY_16, KEY_16, KEY_16), H("0000"))
    assert cp.kcv("3DES", sk.enc) == H("F2DCDD")
    assert cp.kcv("3DES", sk.mac) == H("5FCC69")
    assert cp.kcv("3DES", sk.dek) == H("85272E")
    assert cp.kcv("3DES", sk.rmac) == H("9F749A")
    assert "F2DCDD" in repr(sk) and sk.enc.hex().upper() not in repr(sk).upper()


def test_scp03_session_key_kcvs() -> None:
    # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP03: key 404142..4F, context = KDD.
    sk = gp.scp03_session_keys(gp.StaticKeys(KEY_16, KEY_16, KEY_16, "AES"), KDD)
    assert cp.kcv("AES", sk.enc) == H("C25559")
    assert cp.kcv("AES", sk.mac) == H("0E12CC")
    assert cp.kcv("AES", sk.rmac) == H("9ACB9C")


@given(st.lists(st.binary(min_size=10, max_size=10), max_size=6), st.sampled_from(["emv", "visa2"]))
def test_batch_is_the_single_form(kdds: list[bytes], method: str) -> None:
    batch = gp.diversify(KEY_16, kdds, method)
    assert batch == [gp.diversify_one(KEY_16, kdd, method) for kdd in kdds]


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=40),
    st.sampled_from([64, 128, 192, 256]),
)
def test_scp03_kdf_length_and_label(key: bytes, context: bytes, bits: int) -> None:
    out = gp.scp03_kdf(key, 0x04, context, bits)
    assert len(out) == bits // 8
    # L is part of the label, so a shorter output is not a prefix of a longer one.
    assert gp.scp03_kdf(key, 0x04, context, bits + 64)[: bits // 8] != out


@pytest.mark.parametrize(
    ("key", "length", "prefix", "suffix", "ctr", "out"),
    [
        # NIST CAVP SP 800-108 KBKDF counter-mode CMAC-AES vectors (KDFCTR_gen), as quoted in
        # omfgp tests/omfgp/crypto_test.py test_kbkdf_counter_mode_cmac_aes.
        (
            "dff1e50ac0b69dc40f1051d46c2b069c",
            16,
            "",
            "c16e6e02c5a3dcc8d78b9ac1306877761310455b4e41469951d9e6c2245a064b"
            "33fd8c3b01203a7824485bf0a64060c4648b707d2607935699316ea5",
            1,
            "8be8f0869b3c0ba97b71863d1b9f7813",
        ),
        (
            "7aa9973481d560f3be217ac3341144d8",
            20,
            "",
            "46f88b5af7fb9e29262dd4e010143a0a9c465c627450ec74ab7251889529193e"
            "995c4b56ff55bc2fc8992a0df1ee8056f6816b7614fba4c12d3be1a5",
            1,
            "1746ae4f09903f74bfbe1b8ae2b79d74576a3b09",
        ),
        (
            "bb31eef5a2ca3bfb342c5800fee67313",
            40,
            "",
            "f85ae18f15ce1a5e036d6e3fd227243a9863f88ef532ce1da810b6639c0928f9"
            "b99fe909487d3748cff857cdb790f89e09d8c634dccb616cf7a2663a",
            1,
            "8923d38effde99e24f67dec9330c4f1b874fc382ad644140e73a8e406f405d3fe4b4730b7291275a",
        ),
        (
            "30ec5f6fa1def33cff008178c4454211",
            16,
            "",
            "c95e7b1d4f2570259abfc05bb00730f0284c3bb9a61d07259848a1cb57c81d8a"
            "6c3382c500bf801dfc8f70726b082cf4c3fa34386c1e7bf0e5471438",
            2,
            "00018fff9574994f5c4457f461c7a67e",
        ),
        (
            "b6e04abd1651f8794d4326f4c684e631",
            16,
            "93612f7256c46a3d856d3e951e32dbf15fe11159d0b389ad38d603850fee6d18"
            "d22031435ed36ee20da76745fbea4b10fe1e",
            "99322aae605a5f01e32b",
            1,
            "dcb1db87a68762c6b3354779fa590bef",
        ),
        (
            "aeb7201d055f754212b3e497bd0b25789a49e51da9f363df414a0f80e6f4e42c",
            16,
            "",
            "11ec30761780d4c44acb1f26ca1eb770f87c0e74505e15b7e456b019ce0c3810"
            "3c4d14afa1de71d340db51410596627512cf199fffa20ef8c5f4841e",
            1,
            "2a9e2fe078bd4f5d3076d14d46f39fb2",
        ),
    ],
)
def test_kbkdf_nist_vectors(
    key: str, length: int, prefix: str, suffix: str, ctr: int, out: str
) -> None:
    assert gp.kbkdf_cmac(H(key), length, H(prefix), H(suffix), ctr) == H(out)


def test_scp03_kdf_omfgp_vectors() -> None:
    # omfgp tests/omfgp/scp03_test.py test_derive_data / test_derive_card_challenge.
    context = H("68E9C8799FF8CB46F8D89D88BA1287BF")
    sk = gp.scp03_session_keys(gp.StaticKeys(KEY_16, KEY_16, KEY_16, "AES"), context)
    assert sk.enc == H("3C64070C595D1D72BDEE692DA99B7AE4")
    assert sk.mac == H("6E8468B74A707842E3D3696F338D2657")
    assert sk.rmac == H("FDD1D7C84750994815D0082734C31D88")
    assert gp.scp03_cryptogram(sk.mac, gp.SCP03_CARD_CRYPTOGRAM, context) == H("9B5C9D42D5059430")
    assert gp.scp03_cryptogram(sk.mac, gp.SCP03_HOST_CRYPTOGRAM, context) == H("F3C7624565B5894F")
    challenge = gp.scp03_card_challenge(KEY_16, H("00002A"), H("A000000018434D08090A0B0C000000"))
    assert challenge == H("A3F5F144D19BE66E")


def test_scp02_session_keys_omfgp() -> None:
    # omfgp tests/omfgp/scp02_test.py test_derive_key: key 404142..4F, sequence counter 0007.
    sk = gp.scp02_session_keys(gp.StaticKeys(KEY_16, KEY_16, KEY_16), H("0007"))
    assert sk.mac == H("7A227D376A9DBE23AB50B7DCB45B2093")
    assert sk.rmac == H("EF14C57DB4BB9015E88963D9D920A588")
    assert sk.enc == H("A2268F71917EFE0F33CC6166E1154E27")
