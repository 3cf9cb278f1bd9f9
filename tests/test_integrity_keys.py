"""Key hygiene (issue 11, item 11) and the key store's files (items 3 and 4).

* the weak-DES-key table (NIST SP 800-67 Rev. 2 §3.3.2) and the 3DES refusals: single-length
  keys, weak or semi-weak parts, K1 = K2, K2 = K3;
* a key store refuses such keys, all-zero keys and names that appear twice in its JSON, naming
  the key and never its value;
* production refuses a key-store file that group or others may read;
* the key ceremony refuses equal or all-zero components and an unsound result, naming component
  numbers; the vendor's transport key (``gp-transport``) comes by ceremony, never by generation;
* hostile key-store, component and PKCS#11 configuration files end in one line (under a memory
  limit where they could exhaust it).

The bank stage's files are in ``test_bank_integrity.py``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import KeyStoreError
from cardperso.keystore.base import key_problem, production_guard
from cardperso.keystore.software import SoftwareKeyStore, generate_file

# -- the weak-key table ---------------------------------------------------------------------------

#: NIST SP 800-67 Rev. 2, §3.3.2 (November 2017), as printed there (odd parity).
NIST_WEAK = ["0101010101010101", "FEFEFEFEFEFEFEFE", "E0E0E0E0F1F1F1F1", "1F1F1F1F0E0E0E0E"]
NIST_SEMI_WEAK_PAIRS = [
    ("011F011F010E010E", "1F011F010E010E01"),
    ("01E001E001F101F1", "E001E001F101F101"),
    ("01FE01FE01FE01FE", "FE01FE01FE01FE01"),
    ("1FE01FE00EF10EF1", "E01FE01FF10EF10E"),
    ("1FFE1FFE0EFE0EFE", "FE1FFE1FFE0EFE0E"),
    ("E0FEE0FEF1FEF1FE", "FEE0FEE0FEF1FEF1"),
]
BLOCKS = bytes.fromhex("0123456789ABCDEF4E6F7720697320740000000000000000")


def test_the_table_is_the_published_one() -> None:
    assert [k.hex().upper() for k in cp.DES_WEAK_KEYS] == NIST_WEAK
    assert sorted(k.hex().upper() for k in cp.DES_SEMI_WEAK_KEYS) == sorted(
        k for pair in NIST_SEMI_WEAK_PAIRS for k in pair
    )


@pytest.mark.parametrize("key", NIST_WEAK)
def test_a_weak_key_is_its_own_inverse(key: str) -> None:
    """What makes the key weak, checked on the cipher itself: E_K(E_K(x)) = x."""
    k = bytes.fromhex(key)
    assert cp.ecb_encrypt("3DES", k, cp.ecb_encrypt("3DES", k, BLOCKS)) == BLOCKS
    assert cp.is_weak_des_key(k)


@pytest.mark.parametrize(("k1", "k2"), NIST_SEMI_WEAK_PAIRS)
def test_a_semi_weak_pair_undoes_each_other(k1: str, k2: str) -> None:
    """E_K2(E_K1(x)) = x for each published semi-weak pair."""
    a, b = bytes.fromhex(k1), bytes.fromhex(k2)
    assert cp.ecb_encrypt("3DES", b, cp.ecb_encrypt("3DES", a, BLOCKS)) == BLOCKS
    assert cp.is_weak_des_key(a) and cp.is_weak_des_key(b)


def test_parity_bits_are_ignored_and_ordinary_keys_pass() -> None:
    assert cp.is_weak_des_key(bytes(8))  # 00.. is 01.. without its parity bits
    assert cp.is_weak_des_key(bytes.fromhex("FFFFFFFFFFFFFFFF"))
    assert cp.is_weak_des_key(bytes.fromhex("E1E0E1E0F0F1F0F1"))  # E0E0E0E0F1F1F1F1, parity off
    assert not cp.is_weak_des_key(bytes.fromhex("0123456789ABCDEF"))
    assert not cp.is_weak_des_key(bytes.fromhex("0101010101010103"))  # one real bit differs
    with pytest.raises(Exception, match="a DES key is 8 bytes"):
        cp.is_weak_des_key(bytes(16))


K1 = bytes.fromhex("0123456789ABCDEF")
K2 = bytes.fromhex("FEDCBA9876543210")
K3 = bytes.fromhex("89ABCDEF01234567")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (K1, r"16 or 24 bytes, not 8 \(single-length DES is refused\)"),
        (K1 + K2 + K3 + K1, "16 or 24 bytes, not 32"),
        (K1 + K1, "K1 = K2: the key is single DES"),
        (K1 + cp.xor(K1, bytes.fromhex("0101010101010101")), "K1 = K2"),  # parity bits only
        (K1 + K2 + K2, "K2 = K3: the key is single DES"),
        (K1 + K1 + K2, "K1 = K2"),
        (bytes.fromhex(NIST_WEAK[1]) + K2, "K1 is a weak or semi-weak DES key"),
        (K1 + bytes.fromhex(NIST_SEMI_WEAK_PAIRS[3][0]), "K2 is a weak or semi-weak DES key"),
        (K1 + K2 + bytes.fromhex(NIST_WEAK[2]), "K3 is a weak or semi-weak DES key"),
        (bytes(16), "K1 is a weak"),
    ],
)
def test_tdes_key_problems(key: bytes, reason: str) -> None:
    problem = cp.tdes_key_problem(key)
    assert problem is not None
    assert re.search(reason, problem), problem
    assert key.hex() not in problem.lower() and K1.hex() not in problem.lower()


def test_good_tdes_keys_pass() -> None:
    assert cp.tdes_key_problem(K1 + K2) is None
    assert cp.tdes_key_problem(K1 + K2 + K3) is None
    assert cp.tdes_key_problem(K1 + K2 + K1) is None  # keying option 2 (K1 = K3) is allowed
    assert key_problem("AES", bytes(range(16))) is None
    assert key_problem("SM4", bytes(16)) == "it is all zeros"
    assert key_problem("AES", bytes(32)) == "it is all zeros"


# -- the software store refuses them --------------------------------------------------------------


def _store_doc(**keys: tuple[str, bytes]) -> dict[str, Any]:
    return {
        "format": "cardperso-keystore/1",
        "test_keys": False,
        "keys": {
            name: {"algorithm": alg, "value": value.hex().upper(), "kcv": cp.kcv(alg, value).hex()}
            for name, (alg, value) in keys.items()
        },
    }


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("alg", "value", "reason"),
    [
        ("3DES", K1, r"not 8 \(single-length DES is refused\)"),
        ("3DES", K2 + K2, "K1 = K2"),
        ("3DES", K1 + K2 + K2, "K2 = K3"),
        ("3DES", bytes.fromhex(NIST_WEAK[3]) + K2, "K1 is a weak or semi-weak DES key"),
        ("AES", bytes(16), "it is all zeros"),
        ("SM4", bytes(16), "it is all zeros"),
    ],
)
def test_a_store_file_with_a_bad_key_is_refused_naming_the_key(
    tmp_path: Path, alg: str, value: bytes, reason: str
) -> None:
    good = ("3DES", K1 + K2)
    path = _write(
        tmp_path / "keys.json", _store_doc(**{"gp-kmc": good, "pboc-imk-ac": (alg, value)})
    )
    with pytest.raises(KeyStoreError, match=f"key 'pboc-imk-ac' is refused: .*{reason}") as exc:
        SoftwareKeyStore.load(path)
    assert str(path) in str(exc.value)
    assert value.hex().upper() not in str(exc.value).upper()


def test_importing_a_bad_key_is_refused_and_the_file_keeps_what_it_had(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = generate_file(path)
    before = path.read_bytes()
    for key, reason in [
        (SecretKey("3DES", K1, "single"), "single-length"),
        (SecretKey("3DES", K1 + K1, "k1k2"), "K1 = K2"),
        (SecretKey("AES", bytes(16), "zero"), "all zeros"),
    ]:
        with pytest.raises(KeyStoreError, match=f"key '{key.name}' is refused: .*{reason}"):
            store.import_key(key)
    assert path.read_bytes() == before
    assert "single" not in SoftwareKeyStore.load(path).names()


def test_generated_keys_pass_the_checks(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json")
    symmetric = [n for n in store.names() if store.info(n).algorithm != "SM2"]
    assert len(symmetric) >= 5  # the PKI's SM2 CA key pairs are checked by their own tests
    for name in symmetric:
        key = store._key(name)
        assert key_problem(key.algorithm, key.value) is None, name
    assert store.generate_key("extra", "3DES", 24).algorithm == "3DES"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"format": "cardperso-keystore/1", "test_keys": false, "keys": {'
            '"gp-kmc": {"algorithm": "3DES", "value": "%(a)s", "kcv": "%(ka)s"}, '
            '"gp-kmc": {"algorithm": "3DES", "value": "%(b)s", "kcv": "%(kb)s"}}}',
            "key 'gp-kmc' appears twice",
        ),
        (
            '{"format": "cardperso-keystore/1", "test_keys": false, "keys": {'
            '"gp-kmc": {"algorithm": "3DES", "value": "%(a)s", "value": "%(b)s", "kcv": "%(kb)s"}}}',
            "field 'value' appears twice",
        ),
        (
            '{"format": "cardperso-keystore/1", "test_keys": true, "test_keys": false, "keys": {}}',
            "field 'test_keys' appears twice",
        ),
    ],
)
def test_a_name_twice_in_the_json_is_refused(tmp_path: Path, text: str, message: str) -> None:
    """JSON keeps the last of two equal names silently: the second 'gp-kmc' used to win."""
    a, b = K1 + K2, K2 + K3
    values = {
        "a": a.hex().upper(),
        "b": b.hex().upper(),
        "ka": cp.kcv("3DES", a).hex(),
        "kb": cp.kcv("3DES", b).hex(),
    }
    path = tmp_path / "keys.json"
    path.write_text(text % values)
    with pytest.raises(KeyStoreError, match=f"key store {path}: {message}$") as exc:
        SoftwareKeyStore.load(path)
    assert values["a"] not in str(exc.value) and values["b"] not in str(exc.value)


# -- a key store open to others ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_production_refuses_a_store_file_open_to_others_even_with_the_override(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "keys.json"
    store = generate_file(path)
    production_guard(store, allow_software_store=True)  # 0600: passes
    os.chmod(path, mode)
    with pytest.raises(
        KeyStoreError,
        match=rf"production refuses key store file:{path}: its file is readable by group or "
        rf"others \(mode {mode:03o}\): chmod 600 it",
    ):
        production_guard(SoftwareKeyStore.load(path), allow_software_store=True)


def test_outside_production_an_open_store_file_is_a_warning_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    generate_file(path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="cardperso.keystore.software"):
        store = SoftwareKeyStore.load(path)
    assert store.names()
    assert "readable by group or others (mode 644)" in caplog.text
    assert "production refuses it" in caplog.text


def test_production_on_the_command_line_refuses_an_open_store(tmp_path: Path) -> None:
    """``--production --allow-software-keystore`` with a fresh store at mode 0644: refused
    before any record is read (the check belongs to the guard every command calls)."""
    from cardperso.cli.production import check_production

    path = tmp_path / "keys.json"
    store = generate_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match=r"readable by group or others \(mode 644\)"):
        check_production(store, production=True, allow_software_keystore=True, what="prep x")
    check_production(store, production=False, allow_software_keystore=False, what="prep x")


def test_the_store_file_is_written_atomically_and_private(tmp_path: Path) -> None:
    """One implementation (cardperso.outputs): mode 0600 and no temporary file left."""
    path = tmp_path / "keys.json"
    generate_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    store = SoftwareKeyStore.load(path)
    store.import_key(SecretKey("3DES", K1 + K2, "more"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.hsm
def test_the_hsm_store_refuses_the_same_keys(hsm_store_factory: Any) -> None:
    store = hsm_store_factory()
    for key, reason in [
        (SecretKey("3DES", K1 + K1, "k1k2"), "K1 = K2: the key is single DES"),
        (SecretKey("3DES", K1 + K2 + bytes.fromhex(NIST_WEAK[0]), "weak3"), "K3 is a weak"),
        (SecretKey("AES", bytes(16), "zero"), "it is all zeros"),
    ]:
        with pytest.raises(KeyStoreError, match=f"key '{key.name}' is refused: {reason}"):
            store.import_key(key)
    assert not {"k1k2", "weak3", "zero"} & set(store.names())


# -- the key ceremony (keys import-components) ------------------------------------------------------

#: GlobalPlatform's default test key 40..4F: the transport key of simulated blank cards.
GP_TEST_KEY = bytes(range(0x40, 0x50))
C1 = bytes.fromhex("11111111111111112222222222222222")
C2 = bytes.fromhex("33333333333333334444444444444444")


def _kcv(value: bytes, alg: str = "3DES") -> str:
    return cp.kcv(alg, value).hex().upper()


def _cli(args: list[str], input: str | None = None) -> Any:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    return CliRunner().invoke(cli, args, input=input)


def _ceremony(
    store: Path | str, name: str, components: list[bytes], *extra: str, kcv: str = ""
) -> Any:
    answers = [h for c in components for h in (c.hex(), _kcv(c))]
    answers.append(
        kcv
        or _kcv(
            cp.xor(cp.xor(components[0], components[1]), components[2])
            if len(components) == 3
            else cp.xor(components[0], components[1])
        )
    )
    return _cli(
        ["keys", "import-components", "--store", str(store), "--name", name,
         "--algorithm", "3DES", "--components", str(len(components)), *extra],
        input="\n".join(answers) + "\n",
    )  # fmt: skip


def _no_secrets(text: str, *values: bytes) -> None:
    for v in values:
        assert v.hex() not in text and v.hex().upper() not in text


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ([C1, C1], "components 1 and 2 are equal"),
        ([C1, C2, C1], "components 1 and 3 are equal"),  # the key would be component 2 alone
        ([C1, C2, C2], "components 2 and 3 are equal"),
        ([C1, bytes(16)], "component 2 is all zeros"),
        ([C1, C2, cp.xor(C1, C2)], r"combined key 'k' is refused: K1 is a weak"),  # XOR to zero
        ([C1, cp.xor(C1, K1 + K1)], "combined key 'k' is refused: K1 = K2: the key is single DES"),
        ([C1[:8], C2[:8]], r"a 3DES key is 16 or 24 bytes, not 8 \(single-length DES"),
    ],
)
def test_a_ceremony_refuses_unsound_components(
    tmp_path: Path, components: list[bytes], message: str
) -> None:
    """Before: the same component twice imported an all-zero key, and 8-byte components an
    8-byte "3DES" key. Now refused, naming component numbers, never values; the store is
    unchanged."""
    store = tmp_path / "keys.json"
    generate_file(store)
    before = store.read_bytes()
    result = _ceremony(store, "k", components)
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output
    assert store.read_bytes() == before
    _no_secrets(result.output, *components)


def test_the_vendor_transport_key_comes_by_ceremony(tmp_path: Path) -> None:
    """``keys generate`` makes no transport key (the card vendor's key is not ours to invent);
    ``import-components --name gp-transport`` brings it, checking every component's KCV."""
    store = tmp_path / "keys.json"
    gen = _cli(["keys", "generate", "--out", str(store)])
    assert gen.exit_code == 0, gen.output
    assert "gp-transport" not in SoftwareKeyStore.load(store).names()
    assert "import-components --name NAME`): gp-transport" in gen.output
    c1 = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")
    c2 = cp.xor(GP_TEST_KEY, c1)
    bad = _cli(
        ["keys", "import-components", "--store", str(store), "--name", "gp-transport",
         "--algorithm", "3DES"],
        input="\n".join([c1.hex(), _kcv(c2)]) + "\n",
    )  # fmt: skip
    assert bad.exit_code == 1 and "component 1 does not match its check value" in bad.output
    ok = _ceremony(store, "gp-transport", [c1, c2], kcv="8BAF47")
    assert ok.exit_code == 0, ok.output
    assert "imported gp-transport (3DES, kcv 8BAF47)" in ok.output
    loaded = SoftwareKeyStore.load(store)
    assert loaded.kcv("gp-transport") == bytes.fromhex("8BAF47")
    assert loaded.kcv("gp-kmc") != loaded.kcv("gp-transport")  # issuer KMC ≠ vendor key
    _no_secrets(ok.output, c1, c2, GP_TEST_KEY)


def test_a_known_key_name_keeps_its_algorithm(tmp_path: Path) -> None:
    store = tmp_path / "keys.json"
    generate_file(store)
    result = _cli(
        ["keys", "import-components", "--store", str(store), "--name", "gp-transport",
         "--algorithm", "AES"],
        input="",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--name gp-transport is a 3DES key" in result.output


def test_generate_in_a_token_refuses_a_ceremony_key(tmp_path: Path) -> None:
    """Refused before any token is opened (the configuration does not even exist)."""
    result = _cli(
        ["keys", "generate", "--store", f"pkcs11:{tmp_path / 'none.yaml'}",
         "--name", "gp-transport"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "gp-transport: another party's key, not generated here" in result.output


_LIMITED_CLI = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cardperso.cli.main import main
sys.argv = ["cardperso", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "big"])
def test_a_component_file_that_is_no_component_is_refused(tmp_path: Path, kind: str) -> None:
    """/dev/zero used to be read whole (memory), a FIFO blocked: one line, exit 1, under a
    memory limit."""
    import subprocess
    import sys

    store = tmp_path / "keys.json"
    generate_file(store)
    if kind == "dev-zero":
        bad = Path("/dev/zero")
    elif kind == "fifo":
        bad = tmp_path / "fifo"
        os.mkfifo(bad)
    else:
        bad = tmp_path / "big.txt"
        bad.write_text("00" * 4096)
    good = tmp_path / "c2.txt"
    good.write_text(C2.hex())
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_CLI, "keys", "import-components", "--store", str(store),
         "--name", "k", "--algorithm", "3DES", "--component-file", str(bad),
         "--component-file", str(good), "--component-kcv", "000000",
         "--component-kcv", "000000", "--kcv", "000000"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    reason = "is over 1024 bytes" if kind == "big" else "is not a regular file"
    assert proc.stderr.strip().splitlines() == [f"error: field 'component 1': {bad} {reason}"], (
        proc.stderr
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "hsm.yaml",
            "module: /nonexistent/libpkcs11.so\ntoken: t\npin: env:X\nlabels:\n"
            "  pboc-imk-ac: IMK-AC-2026\n  pboc-imk-ac: IMK-AC-OLD\n",
            r"'pboc-imk-ac' appears twice \(line 6\)",
        ),
        (
            "hsm.json",
            '{"module": "/nonexistent/libpkcs11.so", "token": "t", "token": "u", "pin": "env:X"}',
            "field 'token' appears twice",
        ),
    ],
)
def test_a_pkcs11_configuration_with_a_name_twice_is_refused(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """YAML and JSON keep the last of two equal keys: a key name mapped twice would silently
    use another token object."""
    config = tmp_path / name
    config.write_text(text)
    result = _cli(["keys", "list", f"pkcs11:{config}"])
    assert result.exit_code == 2, result.output
    assert re.search(f"PKCS#11 configuration {config}: {message}", result.output), result.output


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "big", "deep"])
def test_a_hostile_key_store_file_ends_in_one_line(tmp_path: Path, kind: str) -> None:
    """``keys check /dev/zero`` used to read without end (memory), a FIFO blocked and a JSON
    document nested 100,000 deep raised RecursionError: now one line, exit 1, under a memory
    limit."""
    import subprocess
    import sys

    if kind == "dev-zero":
        bad = Path("/dev/zero")
        reason = "cannot read (not a regular file)"
    elif kind == "fifo":
        bad = tmp_path / "fifo"
        os.mkfifo(bad)
        reason = "cannot read (not a regular file)"
    elif kind == "big":
        bad = tmp_path / "big.json"
        bad.write_bytes(b" " * (5 * 1024 * 1024))
        reason = "over 4,194,304 bytes, not read"
    else:
        bad = tmp_path / "deep.json"
        bad.write_text("[" * 100_000 + "]" * 100_000)
        reason = "JSON nested too deeply"
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_CLI, "keys", "check", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: key store {bad}: {reason}"]


@pytest.mark.hsm
def test_the_vendor_transport_key_ceremony_into_a_token(softhsm: Any, tmp_path: Path) -> None:
    """The same ceremony into the HSM: the token recomputes the check value; equal components
    are refused before anything reaches the token."""
    from cardperso.keystore.pkcs11 import Pkcs11KeyStore

    prefix = f"ceremony{os.getpid()}/"
    config = tmp_path / "hsm.json"
    config.write_text(json.dumps({"module": softhsm.module, "token": softhsm.token_label,
                                  "pin": softhsm.pin_source, "label_prefix": prefix}))  # fmt: skip
    store = f"pkcs11:{config}"
    c1 = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")
    same = _cli(
        ["keys", "import-components", "--store", store, "--name", "gp-transport",
         "--algorithm", "3DES"],
        input="\n".join([c1.hex(), _kcv(c1), c1.hex(), _kcv(c1)]) + "\n",
    )  # fmt: skip
    assert same.exit_code == 1 and "components 1 and 2 are equal" in same.output
    ok = _ceremony(store, "gp-transport", [c1, cp.xor(GP_TEST_KEY, c1)], kcv="8BAF47")
    assert ok.exit_code == 0, ok.output
    assert "imported gp-transport (3DES, kcv 8BAF47) into pkcs11:" in ok.output
    token = Pkcs11KeyStore(
        softhsm.module, softhsm.token_label, softhsm.pin_source, label_prefix=prefix
    )
    try:
        assert token.names() == ["gp-transport"]
        assert token.kcv("gp-transport") == bytes.fromhex("8BAF47")
        token.delete_key("gp-transport")
    finally:
        token.close()
