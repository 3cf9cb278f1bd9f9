"""The transport KEK of new key stores is AES; 3DES stays selectable and old stores still open.

Outside reference: the wrapped PIN blocks of a personalization file are decrypted with the
``openssl`` command line (tests/openssl_cli.py: ``aes-128-ecb`` for an AES KEK, ``des-ede-ecb``
for a 3DES one), so the ``cardperso-wrap/1`` format (ECB under the KEK, ISO/IEC 9797-1 padding
method 2 when the data is not whole blocks) is checked against another implementation, and the
header's KEK check value against OpenSSL's ``E(K, 01×16)`` (AES) / ``E(K, 00×8)`` (3DES).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.codec.dgi import parse_dgis
from cardperso.crypto import kcv, odd_parity, xor
from cardperso.errors import UsageError
from cardperso.keystore.base import (
    DEFAULT_KEK,
    DEFAULT_KEK_ALGORITHM,
    KEK_ALGORITHMS,
    REFERENCE_KEY_SET,
    key_algorithms,
    reference_key_set,
)
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.prep.container import iter_records, read_header, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from openssl_cli import dec, enc

PROFILE = load_profile("ssc3-pboc")


def test_a_fresh_store_has_an_aes_transport_kek(tmp_path: Path) -> None:
    assert DEFAULT_KEK_ALGORITHM == "AES" and REFERENCE_KEY_SET[DEFAULT_KEK][0] == "AES"
    for store in (SoftwareKeyStore.generate(), generate_file(tmp_path / "keys.json")):
        info = store.info(DEFAULT_KEK)
        assert info.algorithm == "AES" and len(store._key(DEFAULT_KEK).value) == 16
    loaded = SoftwareKeyStore.load(tmp_path / "keys.json")
    assert loaded.info(DEFAULT_KEK).algorithm == "AES"


def test_3des_stays_selectable(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json", kek_algorithm="3DES")
    assert store.info(DEFAULT_KEK).algorithm == "3DES"
    assert SoftwareKeyStore.load(tmp_path / "keys.json").info(DEFAULT_KEK).algorithm == "3DES"
    assert reference_key_set("3DES")[DEFAULT_KEK][:2] == ("3DES", 16)
    # every other key is the same whichever KEK
    assert {k: v for k, v in reference_key_set("3DES").items() if k != DEFAULT_KEK} == {
        k: v for k, v in REFERENCE_KEY_SET.items() if k != DEFAULT_KEK
    }
    with pytest.raises(UsageError, match="transport KEK algorithm must be one of AES, 3DES"):
        reference_key_set("SM4")
    assert key_algorithms(DEFAULT_KEK) == KEK_ALGORITHMS
    assert key_algorithms("pboc-imk-ac") == ("3DES",) and key_algorithms("nobody") == ()


def test_cli_generate_default_and_option(tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    default = runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path / "a.json")])
    assert default.exit_code == 0, default.output
    assert re.search(r"^transport-kek\s+AES\s", default.output, re.M), default.output
    chosen = runner.invoke(
        cli,
        ["keys", "generate", "--out", str(tmp_path / "b.json"), "--kek-algorithm", "3DES"],
    )
    assert chosen.exit_code == 0, chosen.output
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["keys"][DEFAULT_KEK]["algorithm"] == "3DES"
    assert json.loads((tmp_path / "a.json").read_text())["keys"][DEFAULT_KEK]["algorithm"] == "AES"
    bad = runner.invoke(
        cli, ["keys", "generate", "--out", str(tmp_path / "c.json"), "--kek-algorithm", "SM4"]
    )
    assert bad.exit_code == 2 and "--kek-algorithm" in bad.output
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("algorithm", ["3DES", "AES"])
def test_import_components_takes_either_kek_algorithm(tmp_path: Path, algorithm: str) -> None:
    _register()
    parts = [
        bytes.fromhex("0123456789ABCDEF1F2E3D4C5B6A7988"),
        bytes.fromhex("F1E2D3C4B5A6978802468ACE13579BDF"),
    ]
    parts = [odd_parity(p) for p in parts]
    files = []
    for i, part in enumerate(parts):
        f = tmp_path / f"c{i}.hex"
        f.write_text(part.hex())
        f.chmod(0o600)
        files += ["--component-file", str(f)]
    checks = []
    for part in parts:
        checks += ["--component-kcv", kcv(algorithm, part).hex()]
    combined = xor(*parts)
    args = ["keys", "import-components", "--store", str(tmp_path / "k.json"), "--create"]
    args += ["--name", DEFAULT_KEK, "--algorithm", algorithm, *files, *checks]
    args += ["--kcv", kcv(algorithm, combined).hex()]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert SoftwareKeyStore.load(tmp_path / "k.json").info(DEFAULT_KEK).algorithm == algorithm


def test_import_components_refuses_another_algorithm_for_the_kek(tmp_path: Path) -> None:
    _register()
    args = ["keys", "import-components", "--store", str(tmp_path / "k.json"), "--create"]
    result = CliRunner().invoke(cli, [*args, "--name", DEFAULT_KEK, "--algorithm", "SM4"])
    assert result.exit_code == 2
    assert "is a AES or 3DES key" in result.output and "not SM4" in result.output


def _prepare(tmp_path: Path, store: SoftwareKeyStore) -> Path:
    src = tmp_path / "batch.csv"
    make_batch(src, 6, photos=0, seed=4)
    out = tmp_path / "batch.cppf"
    summary = prepare(
        src,
        PROFILE,
        store,
        lambda: store,
        out,
        tmp_path / "rejects.csv",
        PrepOptions(batch_id="KEK", created=1767225600),
    )
    assert summary.prepared == summary.read == 6
    verify(out, store)
    return out


def _pin_blocks(path: Path, store: SoftwareKeyStore) -> list[bytes]:
    return [dict(parse_dgis(body.apps[0].dgis))[0x8F10] for _, body in iter_records(path, store)]


def test_a_fresh_store_prepares_under_its_aes_kek(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json")
    out = _prepare(tmp_path, store)
    with out.open("rb") as fh:
        header, _raw = read_header(fh)
    kek = store._key(DEFAULT_KEK).value
    assert header.kek_name == DEFAULT_KEK and header.kek_algorithm == "AES"
    assert header.kek_kcv == enc("aes-128-ecb", kek, b"\x01" * 16)[:3]
    n = PROFILE.pin.length
    for wrapped in _pin_blocks(out, store):
        # one AES block: the 8-byte ISO 9564 format-2 block, then padding method 2
        assert len(wrapped) == 16
        clear = dec("aes-128-ecb", kek, wrapped)
        assert re.fullmatch(rf"2{n:x}[0-9]{{{n}}}f{{{14 - n}}}8000000000000000", clear.hex())


def test_an_old_store_with_a_3des_kek_still_opens_and_prepares(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    # the published sample store keeps the 3DES transport KEK it was published with
    assert sample_keystore.info(DEFAULT_KEK).algorithm == "3DES"
    out = _prepare(tmp_path, sample_keystore)
    with out.open("rb") as fh:
        header, _raw = read_header(fh)
    kek = sample_keystore._key(DEFAULT_KEK).value
    assert header.kek_algorithm == "3DES"
    assert header.kek_kcv == enc("des-ede-ecb", kek, bytes(8))[:3]
    n = PROFILE.pin.length
    for wrapped in _pin_blocks(out, sample_keystore):
        assert len(wrapped) == 8
        clear = dec("des-ede-ecb", kek, wrapped)
        assert re.fullmatch(rf"2{n:x}[0-9]{{{n}}}f{{{14 - n}}}", clear.hex())


@pytest.mark.hsm
@pytest.mark.parametrize(
    ("option", "algorithm"), [([], "AES"), (["--kek-algorithm", "3DES"], "3DES")]
)
def test_token_generate_default_and_option(
    softhsm: Any, tmp_path: Path, option: list[str], algorithm: str
) -> None:
    from cardperso.keystore.pkcs11 import Pkcs11KeyStore

    _register()
    prefix = f"kek{algorithm}{os.getpid()}/"
    config = tmp_path / "hsm.json"
    config.write_text(
        json.dumps(
            {
                "module": softhsm.module,
                "token": softhsm.token_label,
                "pin": softhsm.pin_source,
                "label_prefix": prefix,
            }
        )
    )
    args = ["keys", "generate", "--store", f"pkcs11:{config}", "--name", DEFAULT_KEK, *option]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    store = Pkcs11KeyStore(
        softhsm.module, softhsm.token_label, softhsm.pin_source, label_prefix=prefix
    )
    try:
        assert store.names() == [DEFAULT_KEK]
        assert store.info(DEFAULT_KEK).algorithm == algorithm
        store.delete_key(DEFAULT_KEK)
    finally:
        store.close()
