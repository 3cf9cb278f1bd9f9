"""SM2 key pairs in the key stores: the software store's JSON entry, its check value, refusals;
the PKCS#11 store (SoftHSM2, which has no SM2 mechanism) refuses them with one clear error."""

from __future__ import annotations

import datetime as dt
import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pkcs11
import pytest

from cardperso.crypto.sm2 import SM2_P256, Sm2PrivateKey, sm3
from cardperso.errors import KeyStoreError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import x509
from cardperso.pki import Issuer, ca_certificate, verify_certificate

# GB/T 32918.5 annex A's key pair: a published value, so its check value is a fixed vector.
D = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
PUB = (
    "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)


def document(**entry: Any) -> dict[str, Any]:
    base = {
        "algorithm": "SM2",
        "value": D,
        "public_key": PUB,
        "kcv": sm3(bytes.fromhex(PUB))[:3].hex(),
    }
    base.update(entry)
    return {"format": "cardperso-keystore/1", "test_keys": True, "keys": {"pki-root": base}}


def test_entry_loads_with_its_check_value() -> None:
    store = SoftwareKeyStore.from_document(document())
    info = store.info("pki-root")
    assert info.algorithm == "SM2"
    assert info.kcv == sm3(bytes.fromhex(PUB))[:3] == bytes.fromhex("E6A4F9")  # docs/keystore.md
    assert store.sm2_public_key("pki-root").hex().upper() == PUB
    signer = store.sm2_signer("pki-root")
    signer.public_key.verify(signer.sign(b"tbs"), b"tbs")
    assert D not in repr(signer).upper() and D not in repr(store).upper()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = SoftwareKeyStore.generate({"transport-kek": ("3DES", 16)}, test_keys=True)
    path = tmp_path / "keys.json"
    store.save(path)
    info = store.generate_sm2_key("pki-issuing-ca")
    assert info.algorithm == "SM2" and len(info.kcv) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = json.loads(path.read_text())["keys"]["pki-issuing-ca"]
    assert entry["algorithm"] == "SM2" and entry["kcv"] == info.kcv.hex().upper()
    assert entry["public_key"] == store.sm2_public_key("pki-issuing-ca").hex().upper()
    again = SoftwareKeyStore.load(path)
    assert again.names() == ["pki-issuing-ca", "transport-kek"]
    assert again.info("pki-issuing-ca") == store.info("pki-issuing-ca")
    with pytest.raises(KeyStoreError, match="already exists"):
        again.generate_sm2_key("transport-kek")


def test_cli_lists_and_checks_sm2_pairs(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document()))
    path.chmod(0o600)
    cli = [sys.executable, "-m", "cardperso", "keys"]
    out = subprocess.run([*cli, "list", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert re.search(r"pki-root\s+SM2\s+E6A4F9\s+test", out.stdout)
    assert D not in out.stdout.upper()
    out = subprocess.run([*cli, "check", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "1 keys verified" in out.stdout, out.stdout + out.stderr
    path.write_text(json.dumps(document(kcv="E6A4FA")))
    out = subprocess.run([*cli, "check", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert "key 'pki-root' does not match its check value" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_ca_signs_with_a_store_key() -> None:
    store = SoftwareKeyStore.from_document(document())
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    name = x509.Name((("C", "CN"), ("CN", "Test Root")))
    signer = store.sm2_signer("pki-root")
    root = Issuer(signer, ca_certificate(signer, name, serial=1, not_before=now, days=365))
    model = verify_certificate(root.certificate, store.sm2_public_key("pki-root"))
    assert model.public_key.hex().upper() == PUB


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"kcv": "000000"}, "does not match its check value"),
        ({"public_key": PUB[:-2] + "14"}, "public_key does not match its value"),
        (
            {"value": (SM2_P256.n - 1).to_bytes(32, "big").hex()},
            "refused: SM2 private key out of range",
        ),
        ({"value": "00" * 32}, "out of range"),
        ({"value": D[:-2]}, "must be 32 bytes"),
        ({"value": "zz"}, "value is not valid hex"),
        ({"public_key": None}, "public_key must be a hex string"),
        ({"kcv": "00"}, "kcv must be 2 to 8 bytes"),
    ],
)
def test_bad_entries_are_refused_naming_the_key(entry: dict[str, Any], reason: str) -> None:
    with pytest.raises(KeyStoreError, match=reason) as exc:
        SoftwareKeyStore.from_document(document(**entry))
    assert "pki-root" in str(exc.value)
    assert D not in str(exc.value).upper()


def test_symmetric_and_sm2_operations_do_not_mix() -> None:
    store = SoftwareKeyStore.generate({"transport-kek": ("3DES", 16)}, test_keys=True)
    store.generate_sm2_key("pki-root")
    with pytest.raises(KeyStoreError, match="is an SM2 key pair; this operation needs a symmetric"):
        store.wrap("pki-root", bytes(8))
    with pytest.raises(KeyStoreError, match="'transport-kek' is not an SM2 key pair"):
        store.sm2_signer("transport-kek")
    with pytest.raises(KeyStoreError, match="no key named 'nope'"):
        store.sm2_signer("nope")


@pytest.mark.hsm
def test_softhsm2_has_no_sm2_and_the_pkcs11_store_says_so(
    hsm_store_factory: Any, softhsm: Any
) -> None:
    # SoftHSM2 2.6: EC keys and ECDSA, but no SM2/SM3 mechanism (docs/keystore.md)
    token = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.token_label)
    mechanisms = list(token.slot.get_mechanisms())
    names = {m.name for m in mechanisms if isinstance(m, pkcs11.Mechanism)}
    assert {"ECDSA", "EC_KEY_PAIR_GEN"} <= names
    assert not [n for n in names if "SM2" in n or "SM3" in n]
    assert not [
        m for m in mechanisms if int(m) >= 0x80000000
    ]  # vendor-defined (where HSMs put SM2)
    store = hsm_store_factory()
    with pytest.raises(KeyStoreError, match="holds no SM2 key pairs"):
        store.sm2_signer("pki-root")
    with pytest.raises(KeyStoreError, match="cannot hold SM2 key pairs"):
        store.generate_sm2_key("pki-root")
    assert Sm2PrivateKey  # the software key is the only SM2 signer there is
