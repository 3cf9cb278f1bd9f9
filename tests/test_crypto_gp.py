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
    with pytest.raises(UsageError):
        gp.diversify(KEY_16, [KDD], "no-such-method")
    with pytest.raises(UsageError):
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
