"""The PKI application in the demo (issue 17): `cardperso demo` makes the reference product with
the PKI application from the key store's test PKI, personalizes it on every card of the
simulated line and ends with `pki verify` on one card (cardperso and the ``openssl`` command
line check the chain and the card's signature); the test PKI's CA keys are in the sample store
(sample-marked: production refuses them) and in fresh stores.

Outside reference: ``openssl verify`` checks the demo's issuing CA certificate against its root
(with the standard SM2 ID, ``-vfyopt distid:1234567812345678``) and the demo's own ``pki
verify`` step runs ``openssl verify`` and ``openssl pkeyutl -verify`` on the card's certificate
and signature."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.errors import KeyStoreError
from cardperso.keystore.base import production_guard
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.layouts import x509
from cardperso.pki.pem import from_pem
from cardperso.storage.db import Database
from fixtures_keys import SAMPLE_KEYSTORE_PATH
from test_cli_line import lab_line  # noqa: F401  (the demo on the test lab's readers)

pytestmark = pytest.mark.pcsc
DISTID = "distid:1234567812345678"


def test_the_demo_personalizes_the_pki_and_checks_one_card_with_openssl(  # type: ignore[no-untyped-def]
    lab_line,  # noqa: F811  (the fixture imported above)
    pcsc_lab,
    tmp_path: Path,
) -> None:
    _register()
    state = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--count", "8", "--stations", "3",
                                      "--state", str(state)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "product ssc3-pboc-pki: ssc3-pboc with the PKI application" in result.output
    summary = next(
        x
        for x in result.output.splitlines()
        if x.startswith("PKI check, `pki verify` on one card: card ")
    )
    assert "PIN verified, chain card -> Test Issuing CA -> Test Root" in summary
    assert "checked by cardperso and openssl (8 checks OK)" in summary, summary
    with (state / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["outcome"] for r in rows} == {"produced"}
    # every card's two certificates are in the ledger, issued to the chip that was made
    ledger = Database(state / "journal.db").execute(
        "SELECT card_no, chip_serial, usage FROM pki_certificates"
    )
    made = {(r["card_no"], r["chip_serial"]) for r in rows}
    assert {(c, s) for c, s, _ in ledger} == made and len(ledger) == 16
    # the demo's test PKI: openssl checks the issuing CA against the root, and the root is
    # the sample store's pki-root key
    pki = state / "product" / "pki"
    done = subprocess.run(["openssl", "verify", "-vfyopt", DISTID, "-CAfile", pki / "root.pem",
                           pki / "issuing-ca.pem"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "issuing-ca.pem: OK" in done.stdout, done.stdout + done.stderr
    root = x509.decode_certificate(from_pem((pki / "root.pem").read_text())[0])
    sample = json.loads(SAMPLE_KEYSTORE_PATH.read_text())["keys"]["pki-root"]
    assert root.public_key.hex().upper() == sample["public_key"]
    # the derived product is the reference profile plus its pki section, nothing else
    derived = (state / "product" / "ssc3-pboc-pki.yaml").read_text(encoding="utf-8")
    assert "\npki:\n  issuing_ca_key: pki-issuing-ca\n" in derived


def test_the_sample_pki_keys_are_refused_in_production(tmp_path: Path) -> None:
    """The sample CA pairs are recognised by their check values wherever they are copied."""
    doc = json.loads(SAMPLE_KEYSTORE_PATH.read_text())
    copied = tmp_path / "copied.json"
    copied.write_text(json.dumps({"format": doc["format"], "test_keys": False,
                                  "keys": {"my-ca": doc["keys"]["pki-issuing-ca"]}}))  # fmt: skip
    copied.chmod(0o600)
    store = SoftwareKeyStore.load(copied)
    assert store.info("my-ca").algorithm == "SM2" and store.info("my-ca").is_sample
    with pytest.raises(KeyStoreError, match="'my-ca': it is a published sample key"):
        production_guard(store, allow_software_store=True)
    fresh = generate_file(tmp_path / "fresh.json")
    assert {"pki-root", "pki-issuing-ca"} <= set(fresh.names())
    assert not any(fresh.info(n).is_sample for n in ("pki-root", "pki-issuing-ca"))


def test_a_store_without_the_test_pki_makes_the_reference_product(  # type: ignore[no-untyped-def]
    lab_line,  # noqa: F811  (the fixture imported above)
    pcsc_lab,
    tmp_path: Path,
) -> None:
    """An older key file without the CA pairs: the demo says the cards carry no PKI
    application and makes the reference product as before (no PKI step, no check)."""
    _register()
    doc = json.loads(SAMPLE_KEYSTORE_PATH.read_text())
    for name in ("pki-root", "pki-issuing-ca"):
        del doc["keys"][name]
    keys = tmp_path / "old-keys.json"
    keys.write_text(json.dumps(doc))
    keys.chmod(0o600)
    state = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--count", "8", "--stations", "3", "--state",
                                      str(state), "--keys", str(keys)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "product ssc3-pboc: the key store has no test PKI CA keys" in result.output
    assert "PKI check" not in result.output and not (state / "product").exists()
    with (state / "results.csv").open(newline="") as fh:
        assert {r["outcome"] for r in csv.DictReader(fh)} == {"produced"}
