"""The ODA key chain in both key stores: test CA and issuer keys, the issuer certificate.

The certificate is checked from the outside: the CA public key the store gives is turned into a
PEM by OpenSSL, ``openssl pkeyutl`` recovers 90, and its fields and SHA-1 are checked against
EMV 4.3 Book 2 table 6 with ``openssl dgst -sha1``. In the PKCS#11 store (SoftHSM2) the private
keys are generated in the token, sensitive and not extractable, and sign through C_Sign.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute, ObjectClass

import openssl_rsa as orsa
from cardperso.codec import tlv
from cardperso.errors import KeyStoreError
from cardperso.keystore import oda
from cardperso.keystore.base import KeyStore, production_guard
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.layouts import emv_cert as ec

H = bytes.fromhex
SPEC = oda.IssuerCertSpec(issuer_id="623456", expiry="1230", serial="00002A")


def _check_chain(store: KeyStore, tmp_path: Path) -> None:
    (capk,) = oda.capks(store)
    assert (capk.rid, capk.index, capk.exponent) == (oda.RID_PBOC, oda.TEST_CA_INDEX, 3)
    assert len(capk.modulus) == 176
    parts = oda.issuer_certificate(store, SPEC)
    assert oda.issuer_certificate(store, SPEC) == parts  # raw RSA: the same bytes every time
    issuer_modulus, _ = store.rsa_public_key(oda.ISSUER_KEY)
    pem = orsa.public_pem(capk.modulus, 3, tmp_path)
    block = orsa.recover_with(pem, parts.certificate)
    assert block[:15] == H("6A02623456FF123000002A0101B001")  # table 6 header
    assert block[15:-21] + parts.remainder == issuer_modulus and parts.exponent == b"\x03"
    assert block[-21:-1] == orsa.sha1(block[1:-21] + parts.remainder + b"\x03")
    key = ec.recover_issuer_key(ec.PublicKey(capk.modulus, 3), parts.certificate,
                                parts.remainder, parts.exponent, pan=H("6234560000000001"),
                                today=dt.date(2026, 1, 1))  # fmt: skip
    assert key.modulus == issuer_modulus
    info = store.info(capk_name := oda.ca_key_name(oda.RID_PBOC, oda.TEST_CA_INDEX))
    assert info.algorithm == "RSA" and len(info.kcv) == 3
    assert store.rsa_names() == sorted([capk_name, oda.ISSUER_KEY])


def test_fresh_software_store_has_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_file(path)
    store = SoftwareKeyStore.load(path)  # reloaded: the RSA entries survive the file
    _check_chain(store, tmp_path)
    other = tmp_path / "other.json"
    generate_file(other)
    assert oda.capks(SoftwareKeyStore.load(other))[0].modulus != oda.capks(store)[0].modulus
    private = json.loads(path.read_text())["keys"][oda.ISSUER_KEY]["p"]
    shown = repr(store) + repr(store.info(oda.ISSUER_KEY)) + repr(store._rsa.pairs[oda.ISSUER_KEY])
    assert private not in shown and private.lower() not in shown


def test_software_store_refuses_a_tampered_rsa_entry(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_file(path)
    doc = json.loads(path.read_text())
    entry = doc["keys"][oda.ISSUER_KEY]
    entry["dp"] = entry["dq"]
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    with pytest.raises(KeyStoreError, match="'oda-issuer' is refused: RSA key parts") as info:
        SoftwareKeyStore.load(path)
    assert entry["dq"][:16] not in str(info.value)
    doc["keys"][oda.ISSUER_KEY]["dp"] = doc["keys"][oda.ISSUER_KEY]["dq"] = None
    del doc["keys"][oda.ISSUER_KEY]
    doc["keys"]["x"] = {**doc["keys"][oda.ca_key_name(oda.RID_PBOC, 0xF1)], "kcv": "000000"}
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match="'x' does not match its check value"):
        SoftwareKeyStore.load(path)


def test_issuer_record_carries_8f_90_92_9f32(tmp_path: Path) -> None:
    store = SoftwareKeyStore.load(Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json")
    record = oda.issuer_record(store, SPEC)
    (template,) = tlv.parse(record)
    assert template.tag == 0x70 and [t.tag for t in template.children or ()] == [
        0x8F, 0x90, 0x92, 0x9F32,
    ]  # fmt: skip
    values = tlv.to_dict(template)
    parts = oda.issuer_certificate(store, SPEC)
    assert values[0x8F] == b"\xf1" and values[0x90] == parts.certificate
    assert values[0x92] == parts.remainder and values[0x9F32] == b"\x03"


def test_chain_refusals() -> None:
    store = SoftwareKeyStore([], test_keys=True)
    with pytest.raises(KeyStoreError, match="no RSA key pair named 'oda-ca-A000000333-F1'"):
        oda.issuer_certificate(store, SPEC)
    with pytest.raises(Exception, match="1152, 1408, 1984"):
        oda.create_chain(store, ca_bits=1024)
    oda.create_chain(store, ca_bits=1152, issuer_bits=1024)
    with pytest.raises(KeyStoreError, match="already exists"):
        oda.create_chain(store, ca_bits=1152, issuer_bits=1024)
    assert oda.parse_ca_name("oda-ca-A000000333-F1") == (oda.RID_PBOC, 0xF1)
    assert oda.parse_ca_name("oda-issuer") is None


def test_sample_store_chain_is_refused_in_production(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"
    store = SoftwareKeyStore.load(sample)
    _check_chain(store, tmp_path)
    with pytest.raises(KeyStoreError, match=r"sample|test key"):
        production_guard(store, allow_software_store=True)
    for name in (oda.ca_key_name(oda.RID_PBOC, oda.TEST_CA_INDEX), oda.ISSUER_KEY):
        assert store.info(name).is_sample, name


def test_production_refuses_the_sample_chain_alone(tmp_path: Path) -> None:
    # a store that is not marked as test keys and holds only the sample chain's RSA pairs:
    # the production guard recognises them by their check values
    sample = json.loads(
        (Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json").read_text()
    )
    chain = {n: e for n, e in sample["keys"].items() if e["algorithm"] == "RSA"}
    doc = {"format": "cardperso-keystore/1", "test_keys": False, "keys": chain}
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    store = SoftwareKeyStore.load(path)
    assert store.names() == [] and len(store.rsa_names()) == 2
    with pytest.raises(KeyStoreError, match="published sample key"):
        production_guard(store, allow_software_store=True)
    fresh = tmp_path / "fresh.json"
    generate_file(fresh)
    production_guard(SoftwareKeyStore.load(fresh), allow_software_store=True)  # fresh: accepted


def test_hsm_chain_keys_stay_in_the_token(
    hsm_store_factory: Callable[..., Any], tmp_path: Path
) -> None:
    store = hsm_store_factory()
    infos = oda.create_chain(store)
    assert [i.algorithm for i in infos] == ["RSA", "RSA"]
    _check_chain(store, tmp_path)
    session = store._session
    for name in (infos[0].name, infos[1].name):
        (private,) = session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: store._label(name)}
        )
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
    with pytest.raises(KeyStoreError, match="already exists"):
        oda.create_chain(store)
    store.delete_key(oda.ISSUER_KEY)
    assert oda.ISSUER_KEY not in store.rsa_names()
    store.delete_key(infos[0].name)  # keep the shared token small
    assert store.rsa_names() == []
