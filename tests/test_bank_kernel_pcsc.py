"""`cardperso bank verify --capk` over the real PC/SC stack (pcscd + vpcd): the kernel's lines
for a card whose ODA chain holds, and exit 1 naming the failed step when the CAPK file does not
match the card's CA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cardperso.cli.main import _register, cli
from cardperso.crypto.rsa import rsa_generate
from cardperso.keystore import oda
from fixtures_pcsc import LabSlot
from test_bank_host import store as host_store
from test_bank_kernel import SAMPLE, capk_text, oda_dgis
from test_card_support import PAN, PBOC_AID, Host, install_pboc, new_card

pytestmark = pytest.mark.pcsc

H = bytes.fromhex


def invoke(*args: str, prefix: str = "") -> Result:
    _register()
    return CliRunner().invoke(cli, [prefix, *args] if prefix else list(args))


def test_bank_verify_as_a_kernel_over_pcsc(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    from cardperso.keystore.software import SoftwareKeyStore

    chain = SoftwareKeyStore.load(SAMPLE)
    card = Host(new_card(tmp_path))
    card.authenticate(0x03)
    install_pboc(card)
    card.personalize(PBOC_AID, oda_dgis(chain, rsa_generate(1024), aip=H("7D00")))
    keys = tmp_path / "bank-keys.json"
    host_store().save(keys)
    capk = tmp_path / "capk.json"
    capk.write_text(capk_text(chain))
    pcsc_slot.insert(card.card)
    out = invoke("bank", "verify", "--reader", pcsc_slot.name, "--keys", str(keys),
                 "--capk", str(capk))  # fmt: skip
    lines = out.output.splitlines()
    for name in ("issuer certificate", "icc certificate", "sda", "dda", "cda", "arqc",
                 "issuer authentication", "second generate ac"):  # fmt: skip
        assert any(line.startswith(f"ok {name}: ") for line in lines), (name, out.output)
    # the test card carries only the e-cash CRM objects: the kernel says so, exit 1
    assert (out.exit_code == 0) == all(not line.startswith("FAILED") for line in lines)
    assert PAN not in out.output
    # a terminal that supports DDA only checks neither 93 nor a CDA signature
    dda_only = invoke("bank", "verify", "--reader", pcsc_slot.name, "--keys", str(keys),
                      "--capk", str(capk), "--oda", "dda")  # fmt: skip
    names = [line.split(" ", 2)[1].rstrip(":") for line in dda_only.output.splitlines()
             if line.startswith(("ok ", "FAILED "))]  # fmt: skip
    assert "dda" in names and "sda" not in names and "cda" not in names, dda_only.output
    bad_oda = invoke("bank", "verify", "--reader", pcsc_slot.name, "--keys", str(keys),
                     "--capk", str(capk), "--oda", "dda,xda")  # fmt: skip
    assert bad_oda.exit_code == 2 and "unknown method(s) xda" in bad_oda.output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{**c.to_json(), "modulus": rsa_generate(1408).modulus.hex()}
                                 for c in oda.capks(chain)]))  # fmt: skip
    bad = invoke("bank", "verify", "--reader", pcsc_slot.name, "--keys", str(keys),
                 "--capk", str(wrong))  # fmt: skip
    assert bad.exit_code == 1
    assert "FAILED issuer certificate: issuer certificate (90): " in bad.output
    assert "check(s) failed: issuer certificate" in bad.output
    missing = invoke("bank", "verify", "--reader", pcsc_slot.name, "--keys", str(keys),
                     "--capk", str(tmp_path / "none.json"))  # fmt: skip
    assert missing.exit_code == 2 and "file not found" in missing.output


def test_qpboc_purchase_checks_fdda_over_pcsc(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    from cardperso.keystore.software import SoftwareKeyStore
    from test_bank_kernel import qpboc_card

    chain = SoftwareKeyStore.load(SAMPLE)
    card = qpboc_card(tmp_path / "card", chain, rsa_generate(1024))
    capk = tmp_path / "capk.json"
    capk.write_text(capk_text(chain))
    pcsc_slot.insert(card.card)
    out = invoke("qpboc-purchase", "--reader", pcsc_slot.name, "--amount", "800",
                 "--capk", str(capk), prefix="bank")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "approved offline" in out.output
    for name in ("issuer certificate", "static data", "icc certificate", "fdda"):
        assert f"\nok {name}: " in out.output, (name, out.output)
    assert PAN not in out.output
    missing = invoke("qpboc-purchase", "--reader", pcsc_slot.name, "--amount", "800",
                     "--capk", str(tmp_path / "none.json"), prefix="bank")  # fmt: skip
    assert missing.exit_code == 2 and card.card.state.pboc.ec_balance == 4200  # not touched
