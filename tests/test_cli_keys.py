"""``cardperso keys``: generate, check, list, import-components (CliRunner and one real process)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cardperso.crypto import primitives as cp
from cardperso.keystore import REFERENCE_KEY_SET
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from keystore_contract import assert_no_secret, contract_keys

# Components of the pyemv documentation IMK 0123456789ABCDEFFEDCBA9876543210 (KCV 08D7B4,
# EMV Book 2 style check value E(K, 00x8)[:3]); the components themselves are made up here.
COMBINED = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
C1 = bytes.fromhex("11111111111111112222222222222222")
C2 = bytes.fromhex("33333333333333334444444444444444")
C3 = cp.xor(cp.xor(COMBINED, C1), C2)


def _kcv(value: bytes) -> str:
    return cp.kcv("3DES", value).hex().upper()


@pytest.fixture
def cli() -> click.Group:
    from cardperso.cli.main import _register, cli

    _register()
    return cli


def run(cli: click.Group, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def _secret_hexes(*values: bytes) -> list[str]:
    return [h for v in values for h in (v.hex(), v.hex().upper())]


# -- generate / check / list ---------------------------------------------------------------------


def test_generate_writes_fresh_keys(cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "keys.json"
    result = run(cli, "keys", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    store = SoftwareKeyStore.load(out)
    pki = ["pki-issuing-ca", "pki-root"]  # the test PKI's SM2 CA pairs (keystore/sm2keys.py)
    assert store.names() == sorted([*REFERENCE_KEY_SET, *pki]) and not store.test_keys
    for name in pki:
        assert store.info(name).algorithm == "SM2" and not store.info(name).is_sample
    for name in sorted(REFERENCE_KEY_SET):
        assert name in result.output and store.kcv(name).hex().upper() in result.output
        value = store._key(name).value
        assert value.hex().upper() not in result.output and value.hex() not in result.output


def test_generate_refuses_to_overwrite(cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "keys.json"
    generate_file(out)
    before = out.read_bytes()
    result = run(cli, "keys", "generate", "--out", str(out))
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output and "Traceback" not in result.output
    assert out.read_bytes() == before
    assert run(cli, "keys", "generate", "--out", str(out), "--force").exit_code == 0
    assert out.read_bytes() != before


def test_check_ok_and_sample_warning(cli: click.Group, sample_keystore_path: Path) -> None:
    result = run(cli, "keys", "check", str(sample_keystore_path))
    assert result.exit_code == 0
    count = len(SoftwareKeyStore.load(sample_keystore_path).names())
    assert count >= len(REFERENCE_KEY_SET)
    assert f"ok: {count} keys verified" in result.stdout
    assert "published sample key" in result.stderr


def test_check_names_the_bad_key(
    cli: click.Group, tmp_path: Path, sample_keystore_path: Path
) -> None:
    doc = json.loads(sample_keystore_path.read_text())
    doc["keys"]["ssse-uk-ef0d"]["kcv"] = "ABCDEF"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = run(cli, "keys", "check", str(bad))
    assert result.exit_code == 1
    assert "'ssse-uk-ef0d' does not match its check value" in result.output
    assert "Traceback" not in result.output
    assert_no_secret(result.output, contract_keys())


def test_list_shows_no_values(cli: click.Group, sample_keystore_path: Path) -> None:
    result = run(cli, "keys", "list", str(sample_keystore_path))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "alg", "kcv", "marks", "location"]
    assert lines[1].split() == [
        "gp-kmc",
        "3DES",
        "8BAF47",
        "test,SAMPLE",
        f"file:{sample_keystore_path}",
    ]
    sample = SoftwareKeyStore.load(sample_keystore_path)
    assert len(lines) == 1 + len(sample.names()) + len(sample.rsa_names())
    assert lines[-1].split()[:4] == ["oda-issuer", "RSA", "C501D1", "test,SAMPLE"]  # ODA chain
    assert_no_secret(result.output, contract_keys())


def test_missing_store(cli: click.Group, tmp_path: Path) -> None:
    result = run(cli, "keys", "list", str(tmp_path / "none.json"))
    assert result.exit_code == 1 and "file not found" in result.output


# -- import-components ---------------------------------------------------------------------------


def test_import_from_prompts(cli: click.Group, tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    answers = [C1.hex(), _kcv(C1), C2.hex(), _kcv(C2), C3.hex(" "), _kcv(C3), "08D7B4"]
    result = run(
        cli,
        "keys", "import-components", "--store", str(store), "--name", "bank-imk-ac",
        "--algorithm", "3DES", "--components", "3",
        input="\n".join(answers) + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "imported bank-imk-ac (3DES, kcv 08D7B4)" in result.output
    loaded = SoftwareKeyStore.load(store)
    assert loaded._key("bank-imk-ac").value == COMBINED
    # hidden prompts: neither the components nor the key are echoed
    for h in _secret_hexes(C1, C2, C3, COMBINED):
        assert h not in result.output
    assert C3.hex(" ") not in result.output


def test_import_from_files(cli: click.Group, tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    files = []
    for i, c in enumerate((C1, cp.xor(COMBINED, C1)), 1):
        f = tmp_path / f"component{i}.txt"
        f.write_text(c.hex().upper() + "\n")
        files += ["--component-file", str(f), "--component-kcv", _kcv(c)]
    result = run(
        cli,
        "keys", "import-components", "--store", str(store), "--create", "--name", "imk",
        "--algorithm", "3DES", *files, "--kcv", "08d7b4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert SoftwareKeyStore.load(store).kcv("imk") == bytes.fromhex("08D7B4")
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    for h in _secret_hexes(C1, COMBINED):
        assert h not in result.output


def test_import_refuses_a_bad_component_kcv(cli: click.Group, tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    before = store.read_bytes()
    answers = [C1.hex(), "000000"]
    result = run(
        cli, "keys", "import-components", "--store", str(store), "--name", "x",
        "--algorithm", "3DES", input="\n".join(answers) + "\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "component 1 does not match its check value" in result.output
    assert store.read_bytes() == before
    for h in _secret_hexes(C1):
        assert h not in result.output


def test_import_refuses_a_bad_combined_kcv(cli: click.Group, tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    answers = [C1.hex(), _kcv(C1), C2.hex(), _kcv(C2), "123456"]
    result = run(
        cli, "keys", "import-components", "--store", str(store), "--name", "x",
        "--algorithm", "3DES", input="\n".join(answers) + "\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "combined key 'x' does not match its check value" in result.output
    assert "x" not in SoftwareKeyStore.load(store).names()


@pytest.mark.parametrize(
    ("answers", "extra", "message", "code"),
    [
        (["zz"], [], "component 1", 1),
        ([C1.hex(), _kcv(C1), C1[:8].hex()], [], "components differ in length", 1),
        ([], ["--components", "4"], "4", 2),
        ([], ["--component-kcv", "AABBCC"], "one --component-kcv per component", 2),
    ],
)
def test_import_input_errors(
    cli: click.Group, tmp_path: Path, answers: list[str], extra: list[str], message: str, code: int
) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    result = run(
        cli, "keys", "import-components", "--store", str(store), "--name", "x",
        "--algorithm", "3DES", *extra, input="\n".join(answers) + "\n",
    )  # fmt: skip
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_import_refuses_existing_name_and_missing_store(cli: click.Group, tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    answers = [C1.hex(), _kcv(C1), C2.hex(), _kcv(C2), _kcv(cp.xor(C1, C2))]
    args = ["keys", "import-components", "--store", str(store), "--algorithm", "3DES"]
    result = run(cli, *args, "--name", "gp-kmc", input="\n".join(answers) + "\n")
    assert result.exit_code == 1 and "'gp-kmc' already exists" in result.output
    result = run(cli, *args, "--name", "gp-kmc", "--replace", input="\n".join(answers) + "\n")
    assert result.exit_code == 0
    assert SoftwareKeyStore.load(store)._key("gp-kmc").value == cp.xor(C1, C2)
    missing = ["keys", "import-components", "--store", str(tmp_path / "no.json")]
    result = run(cli, *missing, "--algorithm", "3DES", "--name", "n", input="\n".join(answers))
    assert result.exit_code == 1 and "--create" in result.output


# -- the installed console script ----------------------------------------------------------------


def test_console_script_generate_and_check(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("cardperso")
    out = tmp_path / "keys.json"
    env = {k: v for k, v in os.environ.items() if k != "CARDPERSO_DEBUG"}
    gen = subprocess.run(
        [str(exe), "keys", "generate", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert gen.returncode == 0, gen.stderr
    chk = subprocess.run(
        [str(exe), "keys", "check", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert chk.returncode == 0, chk.stderr
    assert "ok: 23 keys verified" in chk.stdout  # 21 reference keys and the PKI's 2 SM2 CA pairs
    store = SoftwareKeyStore.load(out)
    doc = json.loads(out.read_text())
    for name in store.names():  # every private value (symmetric keys, SM2 d)
        v = bytes.fromhex(doc["keys"][name]["value"])
        for text in (gen.stdout, gen.stderr, chk.stdout, chk.stderr):
            assert v.hex() not in text and v.hex().upper() not in text
    # a corrupted file: exit code 1 and one line naming the key
    doc = json.loads(out.read_text())
    doc["keys"]["pboc-imk-ac"]["kcv"] = "000000"
    out.write_text(json.dumps(doc))
    bad = subprocess.run(
        [str(exe), "keys", "check", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: key store {out}: key 'pboc-imk-ac' does not match its check value"
    ]


def test_pkcs11_store_needs_a_readable_config(cli: click.Group, tmp_path: Path) -> None:
    result = run(cli, "keys", "list", f"pkcs11:{tmp_path / 'missing.yaml'}")
    assert result.exit_code == 2 and "PKCS#11" in result.output
    assert "Traceback" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    result = run(cli, "keys", "list", f"pkcs11:{bad}")
    assert result.exit_code == 2 and "PKCS#11" in result.output
