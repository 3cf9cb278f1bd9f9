"""The published sample key set: complete, marked as test keys, reproducible, KCVs in step."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from cardperso.keystore import REFERENCE_KEY_SET, SAMPLE_KCVS, is_sample_kcv
from cardperso.keystore.base import CEREMONY_KEY_SET, KNOWN_KEYS, key_algorithms
from cardperso.keystore.software import SoftwareKeyStore


def _make_sample(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample", root / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_store_is_complete_and_marked(sample_keystore: SoftwareKeyStore) -> None:
    assert sample_keystore.test_keys
    # every reference key; beyond them only keys the tools know (the sample transport keys)
    # (and the test PKI's SM2 CA pairs, checked in tests/test_pki_demo.py)
    symmetric = set(sample_keystore.names()) - {"pki-root", "pki-issuing-ca"}
    assert set(REFERENCE_KEY_SET) <= symmetric <= set(KNOWN_KEYS)
    for name in symmetric:
        _, length, _ = KNOWN_KEYS[name]
        info = sample_keystore.info(name)
        assert info.algorithm in key_algorithms(name) and info.test_key
        assert len(sample_keystore._key(name).value) == length
    required = {"gp-kmc", "gp-kmc-aes", "pboc-imk-ac", "pboc-imk-smi", "pboc-imk-smc"}
    required |= {"transport-kek", "ssse-mk", "ssse-irk", "ssse-ek-read", "ssse-uk-ef05"}
    required |= {"ssse-uk-ef06", "ssse-uk-ef0d", "ssse-pin-reload", "ssse-mk-3des"}
    assert required <= set(sample_keystore.names())
    # published with a 3DES transport KEK (new stores get AES): kept, so its vectors stay
    assert sample_keystore.info("transport-kek").algorithm == "3DES"


def test_sample_file_carries_the_warning(sample_keystore_path: Path) -> None:
    doc = json.loads(sample_keystore_path.read_text())
    assert doc["test_keys"] is True
    assert "TEST KEYS" in doc["_warning"]


def test_gp_test_keys(sample_keystore: SoftwareKeyStore) -> None:
    # GlobalPlatform default test key 404142..4F; its 3DES check value 8BAF47 is the one
    # GlobalPlatformPro prints for the default key.
    assert sample_keystore._key("gp-kmc").value == bytes(range(0x40, 0x50))
    assert sample_keystore.kcv("gp-kmc") == bytes.fromhex("8BAF47")
    assert sample_keystore._key("gp-kmc-aes").value == bytes(range(0x40, 0x50))


def test_sample_kcvs_match_the_file(sample_keystore: SoftwareKeyStore) -> None:
    names = sample_keystore.names() + sample_keystore.rsa_names()  # + the ODA sample chain
    assert {n: sample_keystore.kcv(n).hex().upper() for n in names} == {
        n: SAMPLE_KCVS[n] for n in names
    }
    # SAMPLE_KCVS may name a ceremony key the sample file does not carry, nothing else
    assert set(SAMPLE_KCVS) - set(names) <= set(CEREMONY_KEY_SET)
    assert all(is_sample_kcv(sample_keystore.kcv(n)) for n in sample_keystore.names())
    assert not is_sample_kcv(b"\x00\x00\x00")


def test_sample_file_is_reproducible(sample_keystore_path: Path) -> None:
    # keys-sample/make_sample.py documents how every sample value was made.
    module = _make_sample(sample_keystore_path.parent)
    assert module.sample_document() == json.loads(sample_keystore_path.read_text())


def test_sample_bank_keys_are_recognised_as_samples() -> None:
    from pathlib import Path

    from cardperso.keystore.base import SAMPLE_BANK_KCVS
    from cardperso.keystore.software import SoftwareKeyStore

    bank = SoftwareKeyStore.load(
        Path(__file__).resolve().parent.parent / "keys-sample" / "bank-keys.json"
    )
    assert {n: bank.kcv(n).hex().upper() for n in bank.names()} == SAMPLE_BANK_KCVS
    assert all(is_sample_kcv(bank.kcv(n)) for n in bank.names())
