"""The software key store: the shared contract, the file format, the loader's checks, hygiene."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto import emv, gp
from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore import (
    DEFAULT_KEK,
    REFERENCE_KEY_SET,
    DerivedKey,
    KeyStore,
    production_guard,
)
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from keystore_contract import CARDS, KeyStoreContract, assert_no_secret, contract_keys


class TestSoftwareStoreFromFile(KeyStoreContract):
    """The contract against a store loaded from a copy of the sample file."""

    @pytest.fixture
    def store(self, tmp_path: Path, sample_keystore_path: Path) -> KeyStore:
        copy = tmp_path / "keys.json"
        shutil.copy(sample_keystore_path, copy)
        return SoftwareKeyStore.load(copy)


class TestSoftwareStoreAesKek(KeyStoreContract):
    """The contract with per-card keys wrapped under the AES transport KEK."""

    KEK = "transport-kek-aes"

    @pytest.fixture
    def store(self, sample_keystore: SoftwareKeyStore) -> KeyStore:
        return SoftwareKeyStore(contract_keys().values(), test_keys=True)


class TestSoftwareStoreInMemory(KeyStoreContract):
    """The contract against a store built in memory (no file behind it)."""

    @pytest.fixture
    def store(self) -> KeyStore:
        return SoftwareKeyStore(contract_keys().values(), test_keys=True)


# -- published vectors through the store -----------------------------------------------------------


def test_option_a_vector_through_the_store() -> None:
    # pyemv documentation, EMV option A: IMK 0123456789ABCDEFFEDCBA9876543210,
    # PAN 99012345678901234, PSN 45 -> ICC MK 67F8292358083E5EA7AB7FDA58D53B6B.
    imk = SecretKey("3DES", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "imk")
    store = SoftwareKeyStore([imk], test_keys=True)
    (mk,) = store.derive_emv_a("imk", [("99012345678901234", "45")], wrap_under=None)
    assert mk.data == bytes.fromhex("67F8292358083E5EA7AB7FDA58D53B6B")


def test_gp_cps_vector_through_the_sample_store(sample_keystore: SoftwareKeyStore) -> None:
    # globalplatform-emv.md (GlobalPlatformPro TestPlaintextKeys): EMV/CPS diversification of
    # KMC 404142..4F with KDD 00010203040506070809
    # -> ENC 0EF59FCBF8019B62E62AF6EA20B8BF25, KCV C33013.
    (keys,) = sample_keystore.diversify_gp("gp-kmc", [bytes(range(10))], "emv")
    assert keys.enc.kcv == bytes.fromhex("C33013")
    enc = sample_keystore.unwrap_key(keys.enc)
    assert enc.value == bytes.fromhex("0EF59FCBF8019B62E62AF6EA20B8BF25")


def test_derivation_through_store_equals_direct_calls(sample_keystore: SoftwareKeyStore) -> None:
    keys = contract_keys()
    got = sample_keystore.derive_emv_a("pboc-imk-ac", CARDS, wrap_under=None)
    assert [d.data for d in got] == emv.derive_icc_master_keys_a(keys["pboc-imk-ac"].value, CARDS)
    kdds = [bytes(range(i, i + 10)) for i in range(5)]
    sets = sample_keystore.diversify_gp("gp-kmc", kdds, "visa2", wrap_under=None)
    direct = gp.diversify(keys["gp-kmc"].value, kdds, "visa2")
    assert [(s.enc.data, s.mac.data, s.dek.data) for s in sets] == [
        (d.enc, d.mac, d.dek) for d in direct
    ]


def test_gp_method_needs_matching_kmc(sample_keystore: SoftwareKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="gp-kmc-aes"):
        sample_keystore.diversify_gp("gp-kmc-aes", [bytes(10)], "emv")
    with pytest.raises(KeyStoreError, match="'gp-kmc'"):
        sample_keystore.diversify_gp("gp-kmc", [bytes(10)], "kdf3")


# -- the loader ----------------------------------------------------------------------------------


def _doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "store.json"
    p.write_text(json.dumps(doc))
    return p


def test_kcv_mismatch_is_refused_naming_the_key(tmp_path: Path, sample_keystore_path: Path) -> None:
    doc = _doc(sample_keystore_path)
    doc["keys"]["pboc-imk-smi"]["kcv"] = "000000"
    with pytest.raises(KeyStoreError) as exc:
        SoftwareKeyStore.load(_write(tmp_path, doc))
    message = str(exc.value)
    assert "pboc-imk-smi" in message and "check value" in message
    assert_no_secret(message, contract_keys())


def test_a_changed_value_is_refused(tmp_path: Path, sample_keystore_path: Path) -> None:
    doc = _doc(sample_keystore_path)
    value = doc["keys"]["transport-kek"]["value"]
    doc["keys"]["transport-kek"]["value"] = ("1" if value[0] != "1" else "2") + value[1:]
    with pytest.raises(KeyStoreError, match="'transport-kek' does not match") as exc:
        SoftwareKeyStore.load(_write(tmp_path, doc))
    assert value.lower() not in str(exc.value).lower()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d.pop("test_keys"), "test_keys"),
        (lambda d: d.update(keys=[]), "'keys'"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["keys"]["gp-kmc"].update(algorithm="DES"), "'gp-kmc' has algorithm"),
        (lambda d: d["keys"]["gp-kmc"].update(value="XYZ"), "'gp-kmc' value is not valid hex"),
        (lambda d: d["keys"]["gp-kmc"].update(value="4041"), "'gp-kmc' has a bad length"),
        (lambda d: d["keys"]["gp-kmc"].pop("kcv"), "'gp-kmc' kcv must be a hex string"),
        (lambda d: d["keys"]["gp-kmc"].update(kcv="8B"), "'gp-kmc' kcv must be 2 to 8 bytes"),
        (lambda d: d["keys"].update(bad="x"), "'bad' must be an object"),
    ],
)
def test_malformed_files_are_refused(
    tmp_path: Path, sample_keystore_path: Path, change: Any, expected: str
) -> None:
    doc = _doc(sample_keystore_path)
    change(doc)
    with pytest.raises(KeyStoreError, match=expected) as exc:
        SoftwareKeyStore.load(_write(tmp_path, doc))
    assert_no_secret(str(exc.value), contract_keys())


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="file not found"):
        SoftwareKeyStore.load(tmp_path / "missing.json")
    p = tmp_path / "broken.json"
    p.write_text('{"format": "cardperso-keystore/1", "keys": {"a": {"value": "0011')
    with pytest.raises(KeyStoreError, match="not valid JSON") as exc:
        SoftwareKeyStore.load(p)
    assert "0011" not in str(exc.value)
    with pytest.raises(KeyStoreError, match="JSON object"):
        SoftwareKeyStore.load(_write(tmp_path, [1, 2]))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeyStoreError, match="not a UTF-8 text file"):
        SoftwareKeyStore.load(binary)
    with pytest.raises(KeyStoreError, match="cannot read"):
        SoftwareKeyStore.load(tmp_path)


def test_longer_and_lower_case_check_values_are_accepted(
    tmp_path: Path, sample_keystore_path: Path
) -> None:
    doc = _doc(sample_keystore_path)
    key = contract_keys()["gp-kmc"]
    doc["keys"]["gp-kmc"]["kcv"] = key.kcv(8).hex()
    assert SoftwareKeyStore.load(_write(tmp_path, doc)).kcv("gp-kmc") == bytes.fromhex("8BAF47")


# -- saving, generating ----------------------------------------------------------------------------


def test_generate_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.json"
    store = generate_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left
    loaded = SoftwareKeyStore.load(path)
    # the reference set and the test PKI's SM2 CA pairs (keystore/sm2keys.py)
    pki = ["pki-issuing-ca", "pki-root"]
    assert loaded.names() == store.names() == sorted([*REFERENCE_KEY_SET, *pki])
    assert not loaded.test_keys
    for name in pki:
        assert loaded.info(name) == store.info(name) and loaded.info(name).algorithm == "SM2"
        assert not loaded.info(name).is_sample
    for name in sorted(REFERENCE_KEY_SET):
        assert loaded.info(name) == store.info(name)
        assert loaded.info(name).algorithm == REFERENCE_KEY_SET[name][0]
        assert not loaded.info(name).is_sample
        assert loaded.purpose(name) == REFERENCE_KEY_SET[name][2]
    data = b"round trip"
    assert loaded.unwrap(DEFAULT_KEK, store.wrap(DEFAULT_KEK, data, pad=True), pad=True) == data


def test_generated_keys_are_fresh_with_des_parity(tmp_path: Path) -> None:
    a = SoftwareKeyStore.generate()
    b = SoftwareKeyStore.generate()
    for name in a.names():
        assert a.kcv(name) != b.kcv(name)
        value = a._key(name).value
        if a.info(name).algorithm == "3DES":
            assert cp.odd_parity(value) == value


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = generate_file(path)
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        generate_file(path)
    assert SoftwareKeyStore.load(path).kcv("gp-kmc") == first.kcv("gp-kmc")
    second = generate_file(path, overwrite=True)
    assert SoftwareKeyStore.load(path).kcv("gp-kmc") == second.kcv("gp-kmc")
    with pytest.raises(UsageError, match=r"this key store has no file"):
        SoftwareKeyStore([], test_keys=False).save()


def test_import_key_persists(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json")
    key = SecretKey("AES", bytes(range(32)), "new-aes")
    store.import_key(key)
    assert SoftwareKeyStore.load(tmp_path / "keys.json").info("new-aes").kcv == key.kcv()
    store.import_key(SecretKey("AES", bytes(range(16)), "new-aes"), replace=True)
    assert SoftwareKeyStore.load(tmp_path / "keys.json").kcv("new-aes") == cp.kcv(
        "AES", bytes(range(16))
    )


def test_world_readable_live_store_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    generate_file(path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="cardperso.keystore.software"):
        SoftwareKeyStore.load(path)
    assert "readable by group or others" in caplog.text


def test_duplicate_and_unnamed_keys_are_refused() -> None:
    k = SecretKey("3DES", bytes(16), "a")
    with pytest.raises(KeyStoreError, match="'a' appears twice"):
        SoftwareKeyStore([k, k], test_keys=True)
    with pytest.raises(UsageError, match=r"every key in a key store needs a name"):
        SoftwareKeyStore([SecretKey("3DES", bytes(16))], test_keys=True)


# -- derived keys, unwrap_key ----------------------------------------------------------------------


def test_unwrap_key_checks_the_kcv(sample_keystore: SoftwareKeyStore) -> None:
    (good,) = sample_keystore.derive_ssse("ssse-irk", [bytes(8)])
    assert sample_keystore.unwrap_key(good, "irk").name == "irk"
    bad = DerivedKey(good.algorithm, b"\x00\x00\x00", good.kek, good.data)
    with pytest.raises(KeyStoreError, match="does not match its KCV"):
        sample_keystore.unwrap_key(bad)
    with pytest.raises(UsageError, match="wrapped"):
        good.secret()


def test_wrapped_batch_is_one_ecb_over_the_keys(sample_keystore: SoftwareKeyStore) -> None:
    keys = contract_keys()
    factors = [i.to_bytes(8, "big") for i in range(20)]
    got = sample_keystore.derive_ssse("ssse-mk", factors)
    clear = sample_keystore.derive_ssse("ssse-mk", factors, wrap_under=None)
    kek = keys[DEFAULT_KEK]
    assert b"".join(d.data for d in got) == cp.ecb_encrypt(
        "3DES", kek.value, b"".join(c.data for c in clear)
    )


# -- production guard ----------------------------------------------------------------------------


def test_production_refuses_sample_keys(sample_keystore: SoftwareKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="software key store"):
        production_guard(sample_keystore)
    with pytest.raises(KeyStoreError, match="published sample key"):
        production_guard(sample_keystore, allow_software_store=True)


def test_production_refuses_a_sample_value_under_another_name() -> None:
    renamed = SecretKey("3DES", contract_keys()["pboc-imk-ac"].value, "bank-imk")
    store = SoftwareKeyStore([renamed], test_keys=False)
    with pytest.raises(KeyStoreError, match="'bank-imk': it is a published sample key"):
        production_guard(store, allow_software_store=True)


def test_production_accepts_fresh_keys_with_the_override(fresh_keystore: SoftwareKeyStore) -> None:
    production_guard(fresh_keystore, allow_software_store=True)
    with pytest.raises(KeyStoreError, match="software"):
        production_guard(fresh_keystore)
    marked = SoftwareKeyStore.generate(test_keys=True)
    with pytest.raises(KeyStoreError, match="marked as a test key"):
        production_guard(marked, allow_software_store=True)


# -- hygiene -------------------------------------------------------------------------------------


@settings(max_examples=40)
@given(
    alg=st.sampled_from(["3DES", "AES", "SM4"]),
    value=st.binary(min_size=16, max_size=16),
)
def test_repr_and_errors_never_show_a_value(alg: str, value: bytes) -> None:
    key = SecretKey(alg, value, "k")
    store = SoftwareKeyStore([key], test_keys=False)
    hexes = [value.hex(), value.hex().upper()]
    texts = [repr(store), str(store), repr(store.info("k")), repr(key), str(key)]
    texts.append(repr(DerivedKey(alg, key.kcv(), None, value)))
    for bad in (b"", b"\x00" * 3):
        try:
            store.unwrap("k", bad)
        except KeyStoreError as exc:
            texts.append(str(exc))
    for text in texts:
        for h in hexes:
            assert h not in text


def test_close_drops_the_keys(fresh_keystore: SoftwareKeyStore) -> None:
    with fresh_keystore as store:
        assert store.names()
    assert fresh_keystore.names() == []
