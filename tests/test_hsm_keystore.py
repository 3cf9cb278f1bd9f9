"""The PKCS#11 key store against a real SoftHSM2 token (set up by ``fixtures_hsm``).

* the shared contract suite (``keystore_contract``) in strict mode (AES transport KEK: SoftHSM2
  wraps under AES keys only) and in fast mode (the sample 3DES KEK);
* the same bytes as the software store holding the same keys, both modes, many cards, chunked;
* master keys are sensitive, non-extractable objects whose value cannot be read or wrapped out;
* strict mode never hands clear per-card keys to the host, and never needs ``C_Encrypt`` under a
  master key (proved with a master that may only derive);
* PIN sources, and the PIN never in logs or ``repr``.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from cardperso.crypto import emv, gp
from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.base import DEFAULT_KEK, KeyStore, production_guard
from cardperso.keystore.pkcs11 import (
    Pkcs11KeyStore,
    cmac_subkey1,
    emv_a_data,
    gp_data,
    kdf3_data,
    module_lib,
    read_pin,
)
from cardperso.keystore.software import SoftwareKeyStore
from fixtures_hsm import PIN_ENV, SoftHsm
from keystore_contract import CARDS, FACTORS, KDDS, KeyStoreContract, contract_keys

pytestmark = pytest.mark.hsm

Factory = Callable[..., Pkcs11KeyStore]


def load(store: Pkcs11KeyStore, keys: dict[str, SecretKey]) -> Pkcs11KeyStore:
    """Import every key the token can hold (3DES and AES; SoftHSM2 has no SM4)."""
    for key in keys.values():
        if key.algorithm in ("3DES", "AES"):
            store.import_key(key, test_key=True)
    return store


AES_KEK = "transport-kek-aes"
#: Keys the contract MACs with algorithm 3 (the store creates their K1‖K1 / K2‖K2 halves).
ALG3_KEYS = ("pboc-imk-ac",)


class TestStrictContract(KeyStoreContract):
    ALGORITHMS = ("3DES", "AES")
    CLEAR_DERIVATION = False
    KEK = AES_KEK  # SoftHSM2 wraps under AES keys only

    @pytest.fixture
    def store(self, hsm_store_factory: Factory, keys: dict[str, SecretKey]) -> KeyStore:
        return load(hsm_store_factory(mode="strict", alg3_halves=ALG3_KEYS), keys)


class TestFastContract(KeyStoreContract):
    ALGORITHMS = ("3DES", "AES")
    CLEAR_DERIVATION = True

    @pytest.fixture
    def store(self, hsm_store_factory: Factory, keys: dict[str, SecretKey]) -> KeyStore:
        return load(hsm_store_factory(mode="fast", chunk_size=7, alg3_halves=ALG3_KEYS), keys)


# -- the same bytes as the software store ---------------------------------------------------------

MANY_CARDS = [(f"621700{i:010d}", f"{i % 100:02d}") for i in range(257)]
MANY_FACTORS = [i.to_bytes(8, "big") for i in range(0, 257 * 977, 977)]
MANY_KDDS = [bytes([i % 256]) * 2 + i.to_bytes(8, "big") for i in range(97)]


@pytest.mark.parametrize(
    ("mode", "kek"), [("strict", AES_KEK), ("fast", AES_KEK), ("fast", DEFAULT_KEK)]
)
def test_same_bytes_as_the_software_store(hsm_store_factory: Factory, mode: str, kek: str) -> None:
    keys = contract_keys()
    hsm = load(hsm_store_factory(mode=mode, chunk_size=50), keys)
    soft = SoftwareKeyStore(keys.values(), test_keys=True)
    for name in ("pboc-imk-ac", "pboc-imk-smi"):
        got = hsm.derive_emv_a(name, MANY_CARDS, wrap_under=kek)
        assert got == soft.derive_emv_a(name, MANY_CARDS, wrap_under=kek)
    for name in ("ssse-mk-3des", "ssse-uk-ef05-3des"):
        got = hsm.derive_ssse(name, MANY_FACTORS, wrap_under=kek)
        assert got == soft.derive_ssse(name, MANY_FACTORS, wrap_under=kek)
    for kmc, method in (("gp-kmc", "emv"), ("gp-kmc", "visa2"), ("gp-kmc-aes", "kdf3")):
        gp_keys = hsm.diversify_gp(kmc, MANY_KDDS, method, wrap_under=kek)
        assert gp_keys == soft.diversify_gp(kmc, MANY_KDDS, method, wrap_under=kek)
    if mode == "fast":
        clear = hsm.derive_emv_a("pboc-imk-ac", MANY_CARDS, wrap_under=None)
        assert clear == soft.derive_emv_a("pboc-imk-ac", MANY_CARDS, wrap_under=None)


@pytest.mark.parametrize("length", [24, 32])
def test_kdf3_long_kmc_fast_mode(hsm_store_factory: Factory, length: int) -> None:
    kmc = SecretKey("AES", bytes(range(0x40, 0x40 + length)), "kmc")
    kek = contract_keys()[DEFAULT_KEK]
    hsm = hsm_store_factory(mode="fast")
    for key in (kmc, kek):
        hsm.import_key(key)
    soft = SoftwareKeyStore([kmc, kek], test_keys=True)
    assert hsm.diversify_gp("kmc", KDDS, "kdf3") == soft.diversify_gp("kmc", KDDS, "kdf3")


def test_option_a_vector_strict(hsm_store_factory: Factory) -> None:
    # pyemv documentation, EMV option A: IMK 0123456789ABCDEFFEDCBA9876543210, PAN
    # 99012345678901234, PSN 45 -> ICC MK 67F8292358083E5EA7AB7FDA58D53B6B (odd parity, which
    # SoftHSM2 sets itself on the derived DES object).
    store = hsm_store_factory(mode="strict")
    store.import_key(SecretKey("3DES", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "imk"))
    kek = SecretKey("AES", bytes(range(16)), DEFAULT_KEK)
    store.import_key(kek)
    (mk,) = store.derive_emv_a("imk", [("99012345678901234", "45")])
    expected = bytes.fromhex("67F8292358083E5EA7AB7FDA58D53B6B")
    assert mk.data == cp.ecb_encrypt("AES", kek.value, expected)
    assert store.unwrap_key(mk).value == expected


def test_gp_cps_vector_data() -> None:
    # GlobalPlatform / EMV CPS diversification, KMC 404142..4F, KDD 00010203040506070809:
    # ENC 0EF59FCBF8019B62E62AF6EA20B8BF25 (reference table, globalplatform-emv.md).
    kmc = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    data = gp_data(bytes(range(10)), "emv", 1)
    assert cp.ecb_encrypt("3DES", kmc, data) == bytes.fromhex("0EF59FCBF8019B62E62AF6EA20B8BF25")
    assert emv_a_data(("99012345678901234", "45"))[:8] == bytes.fromhex("1234567890123445")


def test_cmac_subkey_vector() -> None:
    # NIST SP 800-38B, D.1 (AES-128, K = 2b7e1516...): L = 7df76b0c1ab899b33e42f047b91b546f,
    # K1 = fbeed618357133667c85e08f7236a8de.
    l_block = bytes.fromhex("7df76b0c1ab899b33e42f047b91b546f")
    assert cmac_subkey1(l_block) == bytes.fromhex("fbeed618357133667c85e08f7236a8de")
    # and the ECB form of kdf3 equals the software CMAC form (GP KMC 40..4F, KDD 00..09)
    kmc = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    k1 = cmac_subkey1(cp.ecb_encrypt("AES", kmc, bytes(16)))
    for key_id in (1, 2, 3):
        data = kdf3_data(k1, bytes(range(10)), key_id, 1)
        assert cp.ecb_encrypt("AES", kmc, data) == gp.kdf3(kmc, key_id, bytes(range(10)))


# -- master keys stay in the token ----------------------------------------------------------------


def _raw_session(softhsm: SoftHsm) -> Any:
    lib = module_lib(softhsm.module)
    return lib.get_token(token_label=softhsm.token_label).open(rw=True)


def test_master_keys_are_sensitive_and_not_extractable(
    hsm_store_factory: Factory, softhsm: SoftHsm
) -> None:
    store = hsm_store_factory(label_prefix="sens/", mode="strict", alg3_halves=True)
    store.import_key(SecretKey("3DES", bytes(range(16)), "imported"))
    store.import_key(SecretKey("AES", bytes(range(16)), DEFAULT_KEK))
    store.generate_key("generated", "3DES", 16)
    store.generate_key("generated-aes", "AES", 32)
    store.generate_key("generated-24", "3DES", 24)
    session = _raw_session(softhsm)  # the store's login serves this session too
    try:
        objects = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))
        ours = [o for o in objects if o[Attribute.LABEL].startswith("sens/")]
        # 3 objects per 16-byte 3DES key (key, K1K1, K2K2), 1 for the others
        assert len(ours) == 3 + 1 + 3 + 1 + 1
        kek = next(o for o in ours if o[Attribute.LABEL] == "sens/" + DEFAULT_KEK)
        for obj in ours:
            assert obj[Attribute.SENSITIVE] is True
            assert obj[Attribute.EXTRACTABLE] is False
            assert obj[Attribute.TOKEN] is True
            with pytest.raises(p11e.AttributeSensitive):
                obj[Attribute.VALUE]
            if obj is not kek:
                with pytest.raises(p11e.PKCS11Error):
                    kek.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP)
        halves = [o for o in ours if o[Attribute.LABEL].endswith(("#k1k1", "#k2k2"))]
        assert len(halves) == 4
        for half in halves:  # single-DES strength: usable for MAC algorithm 3 only
            assert half[Attribute.DERIVE] is False and half[Attribute.WRAP] is False
            assert half[Attribute.ENCRYPT] is True
        generated = [o for o in ours if "generated" in o[Attribute.LABEL]]
        assert all(o[Attribute.NEVER_EXTRACTABLE] is True for o in generated)
    finally:
        session.close()


def test_generated_key_halves_match_the_key(hsm_store_factory: Factory) -> None:
    store = hsm_store_factory(alg3_halves=["gen"])
    store.generate_key("gen", "3DES", 16)
    store.generate_key("plain", "3DES", 16)
    with pytest.raises(KeyStoreError, match="alg3_halves"):
        store.mac("plain", b"x", "alg3")
    # For one block, MAC algorithm 3 (single DES K1, DES^-1 K2, DES K1) is 3DES-EDE(K1, K2):
    # the in-token halves K1‖K1 / K2‖K2 must agree with the key itself.
    data = b"1234567"
    assert store.mac("gen", data, "alg3") == store.encrypt("gen", cp.pad_method2(data, 8))
    assert store.info("gen").test_key is False
    with pytest.raises(KeyStoreError, match="cannot generate a 16-byte SM4 key in the token"):
        store.generate_key("gen", "SM4", 16, replace=True)


def test_strict_mode_returns_only_wrapped_keys(
    hsm_store_factory: Factory, softhsm: SoftHsm
) -> None:
    keys = contract_keys()
    store = load(hsm_store_factory(mode="strict"), keys)
    clear = emv.derive_icc_master_keys_a(keys["pboc-imk-ac"].value, CARDS)
    got = store.derive_emv_a("pboc-imk-ac", CARDS, wrap_under=AES_KEK)
    assert all(d.wrapped and d.kek == AES_KEK for d in got)
    assert all(d.data != c and c not in d.data for d, c in zip(got, clear))
    for call in (
        lambda: store.derive_emv_a("pboc-imk-ac", CARDS, wrap_under=None),
        lambda: store.derive_ssse("ssse-mk-3des", FACTORS, wrap_under=None),
        lambda: store.diversify_gp("gp-kmc", KDDS, wrap_under=None),
    ):
        with pytest.raises(KeyStoreError, match="strict"):
            call()
    with pytest.raises(KeyStoreError, match="none"):
        store.diversify_gp("gp-kmc", KDDS, "none", wrap_under=AES_KEK)


def test_strict_mode_needs_only_derive_on_the_master(
    hsm_store_factory: Factory, softhsm: SoftHsm
) -> None:
    # A master key that may only derive (no CKA_ENCRYPT): strict mode works with it (per-card
    # keys are produced by C_DeriveKey, never by encrypting derivation data on the host's
    # behalf); fast mode, which needs C_Encrypt under the master, is refused by the token.
    strict = hsm_store_factory(label_prefix="derive-only/", mode="strict")
    fast = hsm_store_factory(label_prefix="derive-only/", mode="fast")
    imk = contract_keys()["pboc-imk-ac"].value
    strict.import_key(SecretKey("AES", bytes(range(16)), DEFAULT_KEK))
    session = _raw_session(softhsm)
    try:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.DES2,
                Attribute.VALUE: imk,
                Attribute.LABEL: "derive-only/imk",
                Attribute.TOKEN: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.DERIVE: True,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
            }
        )
    finally:
        session.close()
    expected = emv.derive_icc_master_keys_a(imk, CARDS)
    got = strict._derive("imk", [emv_a_data(c) for c in CARDS], "3DES", parity=True,
                         wrap_under=DEFAULT_KEK)  # fmt: skip
    assert [strict.unwrap_key(d).value for d in got] == expected
    with pytest.raises(KeyStoreError, match="ECB derivation"):
        fast._derive("imk", [emv_a_data(c) for c in CARDS], "3DES", parity=True,
                     wrap_under=DEFAULT_KEK)  # fmt: skip


def test_strict_mode_under_a_3des_kek_on_softhsm(hsm_store_factory: Factory) -> None:
    # SoftHSM2 2.6 refuses C_WrapKey under DES keys (CKM_DES3_ECB/CBC: CKR_MECHANISM_INVALID);
    # strict mode says so and what to do, instead of silently falling back to clear keys.
    store = load(hsm_store_factory(mode="strict"), contract_keys())
    with pytest.raises(KeyStoreError, match=r"C_WrapKey.*AES transport KEK.*fast"):
        store.derive_emv_a("pboc-imk-ac", CARDS)
    # everything that does not export a per-card key still works
    assert store.unwrap(DEFAULT_KEK, store.wrap(DEFAULT_KEK, bytes(16))) == bytes(16)


def test_sm4_cannot_be_imported(hsm_store_factory: Factory) -> None:
    store = hsm_store_factory()
    with pytest.raises(KeyStoreError, match="SM4"):
        store.import_key(contract_keys()["ssse-mk"])


# -- configuration, labels, lifecycle -------------------------------------------------------------


def test_labels_mapping_and_from_config(hsm_store_factory: Factory, softhsm: SoftHsm) -> None:
    store = hsm_store_factory(labels={"imk": "ISSUER-IMK-AC-2026"}, label_prefix="map/")
    key = SecretKey("3DES", bytes(range(16)), "imk")
    info = store.import_key(key)
    assert info.location == f"pkcs11:{softhsm.token_label}/ISSUER-IMK-AC-2026"
    assert "imk" in store.names()
    configured = Pkcs11KeyStore.from_config(
        {
            "module": softhsm.module,
            "token": softhsm.token_label,
            "pin": softhsm.pin_source,
            "labels": {"imk": "ISSUER-IMK-AC-2026"},
            "label_prefix": "other/",
            "mode": "fast",
        }
    )
    try:
        assert configured.info("imk").kcv == key.kcv()
        assert configured.mode == "fast"
    finally:
        configured.close()
    store.delete_key("imk")
    assert "imk" not in store.names()
    with pytest.raises(KeyStoreError, match="imk"):
        store.info("imk")
    with pytest.raises(UsageError, match="token"):
        Pkcs11KeyStore.from_config({"module": softhsm.module, "pin": softhsm.pin_source})


def test_replace_and_names_isolation(hsm_store_factory: Factory) -> None:
    a = hsm_store_factory()
    b = hsm_store_factory()
    a.import_key(SecretKey("3DES", bytes(range(16)), "k"))
    assert "k" in a.names() and "k" not in b.names()
    with pytest.raises(KeyStoreError, match="exists"):
        a.import_key(SecretKey("3DES", bytes(range(1, 17)), "k"))
    info = a.import_key(SecretKey("3DES", bytes(range(1, 17)), "k"), replace=True)
    assert info.kcv == cp.kcv("3DES", bytes(range(1, 17)))
    assert a.names().count("k") == 1


def test_unknown_token_and_mode(softhsm: SoftHsm) -> None:
    with pytest.raises(KeyStoreError, match="no-such-token"):
        Pkcs11KeyStore(softhsm.module, "no-such-token", softhsm.pin_source)
    with pytest.raises(UsageError, match="mode must be one of"):
        Pkcs11KeyStore(softhsm.module, softhsm.token_label, softhsm.pin_source, mode="lax")  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError, match="module"):
        Pkcs11KeyStore("/nonexistent/libpkcs11.so", softhsm.token_label, softhsm.pin_source)


# -- PINs -----------------------------------------------------------------------------------------


def test_pin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDPERSO_PIN_X", "246810")
    assert read_pin("env:CARDPERSO_PIN_X") == "246810"
    monkeypatch.delenv("CARDPERSO_PIN_X")
    with pytest.raises(KeyStoreError, match="CARDPERSO_PIN_X"):
        read_pin("env:CARDPERSO_PIN_X")
    pin_file = tmp_path / "pin"
    pin_file.write_text("135790\n")
    pin_file.chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        read_pin(f"file:{pin_file}")
    pin_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert read_pin(f"file:{pin_file}") == "135790"
    with pytest.raises(KeyStoreError, match="cannot read"):
        read_pin(f"file:{tmp_path / 'missing'}")
    # a PIN given directly is refused, and not repeated in the message
    for bad in ("135790", "pin:135790", "env:"):
        with pytest.raises(UsageError) as exc:
            read_pin(bad)
        assert "135790" not in str(exc.value)


def test_pin_from_file_and_wrong_pin(softhsm: SoftHsm, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(os.environ[PIN_ENV] + "\n")
    pin_file.chmod(0o600)
    store = Pkcs11KeyStore(softhsm.module, softhsm.token_label, f"file:{pin_file}")
    store.close()
    store.close()  # idempotent
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-pin\n")
    wrong.chmod(0o600)
    with pytest.raises(KeyStoreError, match="PinIncorrect"):
        Pkcs11KeyStore(softhsm.module, softhsm.token_label, f"file:{wrong}")


def test_pin_never_in_logs_or_repr(
    hsm_store_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    pin = os.environ[PIN_ENV]
    with caplog.at_level(logging.DEBUG):
        store = load(hsm_store_factory(mode="fast"), contract_keys())
        store.derive_emv_a("pboc-imk-ac", CARDS)
        store.diversify_gp("gp-kmc", KDDS)
        store.generate_key("g", "AES", 16)
    texts = [caplog.text, repr(store), str(store)]
    for text in texts:
        assert pin not in text
        for key in contract_keys().values():
            assert key.value.hex() not in text.lower()
    # the audit trail names each key by name, algorithm and check value, never its bytes
    assert "imported key 'pboc-imk-ac' (3DES, KCV 2EF33D) into pkcs11:" in caplog.text
    assert "generated key 'g' (AES, KCV " in caplog.text


def test_token_session_shared_between_stores(hsm_store_factory: Factory) -> None:
    # two stores on one token: closing one must not log the other out
    a = hsm_store_factory()
    b = hsm_store_factory()
    b.import_key(SecretKey("AES", bytes(range(16)), "k"))  # an all-zero key is refused
    a.close()
    assert b.encrypt("k", bytes(16)) == cp.ecb_encrypt("AES", bytes(range(16)), bytes(16))


def test_ssse_sm4_master_is_not_in_the_token(hsm_store_factory: Factory) -> None:
    store = load(hsm_store_factory(mode="fast"), contract_keys())
    with pytest.raises(KeyStoreError, match="no key 'ssse-mk' in pkcs11:"):
        store.derive_ssse("ssse-mk", FACTORS)


def test_production_guard_on_the_token(hsm_store_factory: Factory) -> None:
    store = hsm_store_factory()
    store.generate_key("pboc-imk-ac", "3DES", 16)
    store.generate_key(DEFAULT_KEK, "AES", 16)
    assert store.is_software is False
    production_guard(store)  # keys generated in the token: accepted
    store.import_key(contract_keys()["gp-kmc"])  # a published sample key, not marked as test
    with pytest.raises(KeyStoreError, match="sample"):
        production_guard(store)
    store.delete_key("gp-kmc")
    store.import_key(SecretKey("3DES", cp.random_bytes(16), "scratch"), test_key=True)
    with pytest.raises(KeyStoreError, match="test key"):
        production_guard(store)
