"""`cardperso keys generate --store pkcs11:CONFIG`: master keys generated inside the token
(SoftHSM2), never leaving it; the command prints names and check values only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.keystore.pkcs11 import Pkcs11KeyStore

pytestmark = pytest.mark.hsm


def test_generate_master_keys_inside_the_token(softhsm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _register()
    prefix = f"gen{os.getpid()}/"
    config = tmp_path / "hsm.json"
    config.write_text(json.dumps({"module": softhsm.module, "token": softhsm.token_label,
                                  "pin": softhsm.pin_source, "label_prefix": prefix}))  # fmt: skip
    args = [
        "keys",
        "generate",
        "--store",
        f"pkcs11:{config}",
        "--name",
        "gp-kmc",
        "--name",
        "pboc-imk-ac",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "gp-kmc" in result.output and "generated in pkcs11:" in result.output
    store = Pkcs11KeyStore(
        softhsm.module, softhsm.token_label, softhsm.pin_source, label_prefix=prefix
    )
    try:
        assert sorted(store.names()) == ["gp-kmc", "pboc-imk-ac"]
        for name in store.names():
            assert store.info(name).kcv.hex().upper() in result.output
        again = CliRunner().invoke(cli, args)  # existing keys are not replaced without --force
        assert again.exit_code != 0
        for name in store.names():
            store.delete_key(name)
    finally:
        store.close()


def test_generate_needs_exactly_one_destination(tmp_path: Path) -> None:
    _register()
    assert CliRunner().invoke(cli, ["keys", "generate"]).exit_code == 2
    both = CliRunner().invoke(
        cli, ["keys", "generate", "--out", str(tmp_path / "k.json"), "--store", "pkcs11:x"]
    )
    assert both.exit_code == 2
    bad = CliRunner().invoke(cli, ["keys", "generate", "--store", "pkcs11:x", "--name", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
