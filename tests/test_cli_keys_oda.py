"""`cardperso keys export-capk` and `keys oda-chain`: the CA public keys a terminal loads, and
the chain made in a file store and inside a SoftHSM2 token; never private key material."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import openssl_rsa as orsa
from cardperso.cli.main import _register, cli
from cardperso.keystore import oda
from cardperso.keystore.pkcs11 import Pkcs11KeyStore
from cardperso.keystore.software import SoftwareKeyStore

SAMPLE = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"


def _run(*args: str) -> Any:
    _register()
    return CliRunner().invoke(cli, list(args))


def _private_hexes(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    return [e[p] for e in doc["keys"].values() if e["algorithm"] == "RSA"
            for p in ("p", "q", "dp", "dq", "qinv")]  # fmt: skip


def test_export_capk_of_a_fresh_store(tmp_path: Path) -> None:
    store_path, out = tmp_path / "keys.json", tmp_path / "capk.json"
    assert _run("keys", "generate", "--out", str(store_path)).exit_code == 0
    result = _run("keys", "export-capk", str(store_path), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "CAPK A000000333 F1: 1408 bits, e=3" in result.output
    (entry,) = json.loads(out.read_text())
    assert set(entry) == {"rid", "index", "modulus", "exponent"}
    assert (entry["rid"], entry["index"], entry["exponent"]) == ("A000000333", "F1", "03")
    modulus, _ = SoftwareKeyStore.load(store_path).rsa_public_key("oda-ca-A000000333-F1")
    assert bytes.fromhex(entry["modulus"]) == modulus
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capk.json", "keys.json"]  # no temp
    text = out.read_text() + result.output
    for h in _private_hexes(store_path):
        assert h not in text
    # OpenSSL accepts the exported key as an RSA public key of that size and exponent
    pem = orsa.public_pem(bytes.fromhex(entry["modulus"]), 3, tmp_path)
    assert "1408 bit" in orsa._run(["pkey", "-pubin", "-in", str(pem), "-text", "-noout"]).decode()


def test_export_capk_refusals(tmp_path: Path) -> None:
    same = _run("keys", "export-capk", str(SAMPLE), "--out", str(SAMPLE))
    assert same.exit_code == 2 and "same file" in same.output
    empty = tmp_path / "empty.json"
    SoftwareKeyStore([], test_keys=True).save(empty)
    none = _run("keys", "export-capk", str(empty), "--out", str(tmp_path / "c.json"))
    assert none.exit_code == 2 and "no CA key pair" in none.output
    assert not (tmp_path / "c.json").exists()
    nodir = _run("keys", "export-capk", str(SAMPLE), "--out", str(tmp_path / "no" / "c.json"))
    assert nodir.exit_code == 2


def test_oda_chain_in_a_file_store(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    SoftwareKeyStore([], test_keys=True).save(path)
    result = _run("keys", "oda-chain", str(path), "--ca-index", "E3", "--ca-bits", "1152",
                  "--issuer-bits", "1024")  # fmt: skip
    assert result.exit_code == 0, result.output
    store = SoftwareKeyStore.load(path)
    assert store.rsa_names() == ["oda-ca-A000000333-E3", "oda-issuer"]
    assert oda.capks(store)[0].index == 0xE3 and len(oda.capks(store)[0].modulus) == 144
    assert _run("keys", "oda-chain", str(path), "--ca-index", "E3").exit_code == 1  # exists
    assert _run("keys", "oda-chain", str(path), "--ca-index", "XYZ").exit_code == 2


def test_oda_chain_and_export_from_a_token(softhsm: Any, tmp_path: Path) -> None:
    prefix = f"oda{os.getpid()}/"
    config = tmp_path / "hsm.json"
    config.write_text(json.dumps({"module": softhsm.module, "token": softhsm.token_label,
                                  "pin": softhsm.pin_source, "label_prefix": prefix}))  # fmt: skip
    made = _run("keys", "oda-chain", f"pkcs11:{config}", "--ca-bits", "1152",
                "--issuer-bits", "1152")  # fmt: skip
    assert made.exit_code == 0, made.output
    out = tmp_path / "capk.json"
    assert _run("keys", "export-capk", f"pkcs11:{config}", "--out", str(out)).exit_code == 0
    (entry,) = json.loads(out.read_text())
    store = Pkcs11KeyStore(softhsm.module, softhsm.token_label, softhsm.pin_source,
                           label_prefix=prefix)  # fmt: skip
    try:
        assert bytes.fromhex(entry["modulus"]) == store.rsa_public_key("oda-ca-A000000333-F1")[0]
        parts = oda.issuer_certificate(store, oda.IssuerCertSpec(issuer_id="623456"))
        block = orsa.recover_with(orsa.public_pem(bytes.fromhex(entry["modulus"]), 3, tmp_path),
                                  parts.certificate)  # fmt: skip
        assert block[:6] == bytes.fromhex("6A02623456FF")
        for name in store.rsa_names():
            store.delete_key(name)
    finally:
        store.close()
