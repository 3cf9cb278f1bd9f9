"""``cardperso keys``: generate, check, list key stores and import keys from components.

Nothing here ever prints a key value: only names, algorithms, check values and locations.

A key store is named by a path (a ``cardperso-keystore/1`` JSON file) or by
``pkcs11:CONFIG``, a JSON or YAML file of PKCS#11 settings (module, token, PIN source, labels,
mode) handed to ``cardperso.keystore.pkcs11``.
"""

from __future__ import annotations

import importlib
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from cardperso.crypto import primitives as cp
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import DataError, KeyStoreError, UsageError
from cardperso.keystore.base import (
    CEREMONY_KEY_SET,
    DEFAULT_KEK_ALGORITHM,
    KEK_ALGORITHMS,
    KNOWN_KEYS,
    REFERENCE_KEY_SET,
    KeyInfo,
    KeyStore,
    key_algorithms,
    key_problem,
    reference_key_set,
)
from cardperso.keystore.software import SoftwareKeyStore, generate_file, parse_json_document

log = logging.getLogger(__name__)

PKCS11_PREFIX = "pkcs11:"


def open_store(spec: str) -> KeyStore:
    """Open a key store named by a file path or ``pkcs11:CONFIG``.

    ``CONFIG`` is a JSON or YAML file with the PKCS#11 store's settings (module, token, PIN
    source, labels, mode); the PIN itself never appears on the command line.
    """
    if spec.startswith(PKCS11_PREFIX):
        return _open_pkcs11(spec[len(PKCS11_PREFIX) :])
    return SoftwareKeyStore.load(spec)


def _open_pkcs11(config_path: str) -> KeyStore:
    try:
        module = importlib.import_module("cardperso.keystore.pkcs11")
    except ImportError as exc:
        raise UsageError(f"the PKCS#11 key store is not available ({exc})") from None
    opener: Any = getattr(module, "open_store", None)
    if opener is not None:
        opened: KeyStore = opener(config_path)
        return opened
    path = Path(config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"PKCS#11 configuration {path}: {exc.strerror}") from None
    where = f"PKCS#11 configuration {path}"
    try:
        if path.suffix == ".json":
            config = parse_json_document(text, where)
        else:
            config = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except KeyStoreError as exc:
        raise UsageError(str(exc)) from None
    except _DuplicateYamlKey as dup:
        raise UsageError(f"{where}: {dup.name!r} appears twice (line {dup.line})") from None
    except (ValueError, yaml.YAMLError, RecursionError):
        raise UsageError(f"{where}: not valid JSON/YAML") from None
    if not isinstance(config, dict):
        raise UsageError(f"PKCS#11 configuration {path}: expected a mapping of settings")
    store: KeyStore = module.Pkcs11KeyStore.from_config(config)
    return store


class _DuplicateYamlKey(Exception):
    def __init__(self, name: str, line: int) -> None:
        super().__init__(name)
        self.name, self.line = name, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping key given twice (YAML keeps the last one
    silently: two ``labels`` entries for one key name would point it at another token object)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _value in node.value:
        name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        if name and name in seen:
            raise _DuplicateYamlKey(name, key_node.start_mark.line + 1)
        seen.add(name)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _marks(info: KeyInfo) -> str:
    marks = []
    if info.test_key:
        marks.append("test")
    if info.is_sample:
        marks.append("SAMPLE")
    return ",".join(marks) or "-"


def _print_table(store: KeyStore, *, location: bool) -> None:
    infos = [store.info(n) for n in [*store.names(), *store.rsa_names()]]  # + ODA RSA pairs
    width = max((len(i.name) for i in infos), default=4)
    header = f"{'name':<{width}}  {'alg':<4}  kcv     marks"
    if location:
        header += "        location"
    click.echo(header)
    for i in infos:
        line = f"{i.name:<{width}}  {i.algorithm:<4}  {i.kcv.hex().upper():<6}  {_marks(i):<11}"
        if location:
            line += f"  {i.location}"
        click.echo(line.rstrip())


@click.group("keys")
def keys_group() -> None:
    """Key stores: generate fresh keys, check and list them, import keys from components."""


@keys_group.command("generate")
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key-store file to write (mode 0600).",
)
@click.option(
    "--store",
    "store_spec",
    default=None,
    help="Instead of a file: generate the master keys inside a token (pkcs11:CONFIG).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    help="With --store: only these reference keys (repeatable; default: all of them).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file (or replace token keys).")
@click.option(
    "--kek-algorithm",
    type=click.Choice(KEK_ALGORITHMS),
    default=DEFAULT_KEK_ALGORITHM,
    show_default=True,
    help="Algorithm of the transport KEK (transport-kek); 3DES for a station or HSM that needs it.",
)
def generate_cmd(
    out: Path | None,
    store_spec: str | None,
    names: tuple[str, ...],
    force: bool,
    kek_algorithm: str = DEFAULT_KEK_ALGORITHM,
) -> None:
    """Fresh random keys with the reference key names: a key-store file (``--out``), or
    master keys generated inside an HSM token (``--store pkcs11:CONFIG``), never leaving it.

    Use them instead of the published sample keys (keys-sample/), which production refuses.
    Prints names and check values only.
    """
    if (out is None) == (store_spec is None):
        raise click.UsageError("give either --out FILE or --store pkcs11:CONFIG")
    if out is not None:
        if names:
            raise click.UsageError("--name goes with --store")
        store = generate_file(out, overwrite=force, kek_algorithm=kek_algorithm)
        click.echo(f"wrote {len(store.names())} fresh keys to {out}")
        _print_table(store, location=False)
        _ceremony_note()
        return
    assert store_spec is not None
    if not store_spec.startswith("pkcs11:"):
        raise click.UsageError("--store takes a PKCS#11 configuration: pkcs11:CONFIG")
    ceremony = sorted(set(names) & set(CEREMONY_KEY_SET))
    if ceremony:
        raise click.UsageError(
            f"{', '.join(ceremony)}: another party's key, not generated here; import it with "
            "`cardperso keys import-components`"
        )
    unknown = sorted(set(names) - set(REFERENCE_KEY_SET))
    if unknown:
        raise click.UsageError(f"not reference key names: {', '.join(unknown)}")
    token = open_store(store_spec)
    try:
        key_set = reference_key_set(kek_algorithm)
        for name in names or tuple(key_set):
            algorithm, length, _purpose = key_set[name]
            info = token.generate_key(name, algorithm, length, replace=force)
            click.echo(
                f"{info.name:<24} {info.algorithm:<5} KCV {info.kcv.hex().upper()}  generated in {info.location}"
            )
    finally:
        token.close()
    _ceremony_note()


def _ceremony_note() -> None:
    """``keys generate`` makes the issuer's keys only; say which keys come by ceremony."""
    click.echo(
        "not generated (another party's keys, imported by key ceremony with "
        "`cardperso keys import-components --name NAME`): " + ", ".join(CEREMONY_KEY_SET)
    )


@keys_group.command("check")
@click.argument("store_spec", metavar="STORE")
def check_cmd(store_spec: str) -> None:
    """Verify every key's check value (exit 1 naming the first key that does not match)."""
    with open_store(store_spec) as store:
        infos = [store.info(n) for n in store.names()]
        location = store.location
    click.echo(f"ok: {len(infos)} keys verified in {location}")
    samples = [i.name for i in infos if i.is_sample]
    if samples:
        click.echo(
            f"warning: {len(samples)} published sample key(s), refused in production: "
            + ", ".join(samples),
            err=True,
        )


@keys_group.command("list")
@click.argument("store_spec", metavar="STORE")
def list_cmd(store_spec: str) -> None:
    """Names, algorithms, check values, test/sample markers and where each key lives."""
    with open_store(store_spec) as store:
        _print_table(store, location=True)


#: A component file holds one component in hex (at most 32 bytes, with spaces and line breaks):
#: anything longer is not a component, and is not read whole.
_COMPONENT_FILE_LIMIT = 1024


def _read_component_file(path: Path, what: str) -> str:
    """The text of a component file: a regular file of at most ``_COMPONENT_FILE_LIMIT`` bytes
    (a FIFO or a device would block or never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror})", field=what) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path} is not a regular file", field=what)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(_COMPONENT_FILE_LIMIT + 1)
    if len(data) > _COMPONENT_FILE_LIMIT:
        raise DataError(f"{path} is over {_COMPONENT_FILE_LIMIT} bytes", field=what)
    return data.decode("ascii", errors="replace")


def _check_component(algorithm: str, value: bytes, earlier: list[bytes], n: int) -> None:
    """Refuse a component that cannot be part of a sound key: a length the algorithm has no
    key of (a single-length DES key is no 3DES key), all zeros (the key would be the other
    components: fewer custodians hold it), or equal to an earlier component (two equal
    components XOR to zero). Names component numbers, never values."""
    what = f"component {n}"
    if earlier and len(value) != len(earlier[0]):
        raise DataError("components differ in length", field=what)
    try:
        cp.check_key(algorithm, value)
    except UsageError as exc:
        raise DataError(str(exc), field=what) from None
    if algorithm == "3DES" and len(value) == 8:
        raise DataError(
            "a 3DES key is 16 or 24 bytes, not 8 (single-length DES is refused)", field=what
        )
    if not any(value):
        raise KeyStoreError(f"{what} is all zeros: the key would be the other components")
    for m, other in enumerate(earlier, 1):
        if cp.equal(value, other):
            raise KeyStoreError(
                f"components {m} and {n} are equal: each custodian must bring their own component"
            )


def _parse_component(text: str, what: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        value = bytes.fromhex(cleaned)
    except ValueError:
        raise DataError("not valid hex", field=what) from None
    if not value:
        raise DataError("empty", field=what)
    return value


def _parse_kcv(text: str, what: str) -> bytes:
    value = _parse_hex_kcv(text)
    if value is None:
        raise DataError("a check value is 2 to 8 bytes of hex", field=what)
    return value


def _parse_hex_kcv(text: str) -> bytes | None:
    try:
        value = bytes.fromhex("".join(text.split()))
    except ValueError:
        return None
    return value if 2 <= len(value) <= 8 else None


def _check_kcv(algorithm: str, value: bytes, expected: bytes, what: str) -> None:
    try:
        actual = cp.kcv(algorithm, value, len(expected))
    except UsageError as exc:
        raise DataError(str(exc), field=what) from None
    if not cp.equal(actual, expected):
        raise KeyStoreError(f"{what} does not match its check value")


@keys_group.command("import-components")
@click.option("--store", "store_spec", required=True, help="Key store (file or pkcs11:CONFIG).")
@click.option("--name", required=True, help="Name of the key to create.")
@click.option(
    "--algorithm", required=True, type=click.Choice(list(cp.ALGORITHMS)), help="Key algorithm."
)
@click.option(
    "--components",
    "count",
    type=click.IntRange(2, 3),
    default=None,
    help="Number of components to prompt for (2 or 3; default 2 without --component-file).",
)
@click.option(
    "--component-file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding one component in hex (repeat 2 or 3 times).",
)
@click.option(
    "--component-kcv",
    "component_kcvs",
    multiple=True,
    help="Check value of each component, in order (prompted when missing).",
)
@click.option("--kcv", "kcv_text", default=None, help="Check value of the combined key.")
@click.option("--replace", is_flag=True, help="Replace an existing key of that name.")
@click.option("--create", is_flag=True, help="Create the key-store file if it does not exist yet.")
def import_components_cmd(
    store_spec: str,
    name: str,
    algorithm: str,
    count: int | None,
    files: Sequence[Path],
    component_kcvs: Sequence[str],
    kcv_text: str | None,
    replace: bool,
    create: bool,
) -> None:
    """Import a key from 2 or 3 components (XOR), typed without echo or read from files.

    Each component is checked against its check value, then the combined key against its own;
    the key is written to the store and only its check value is printed.
    """
    if files and count is not None and count != len(files):
        raise UsageError("--components does not match the number of --component-file options")
    n = len(files) if files else (count or 2)
    if not 2 <= n <= 3:
        raise UsageError("give 2 or 3 components")
    if component_kcvs and len(component_kcvs) != n:
        raise UsageError(f"give one --component-kcv per component ({n})")
    known = KNOWN_KEYS.get(name)
    allowed = key_algorithms(name)
    if known is not None and algorithm not in allowed:
        raise UsageError(
            f"--name {name} is a {' or '.join(allowed)} key ({known[2]}), not {algorithm}"
        )
    store = _open_for_import(store_spec, create)

    with store:  # a token session is closed (logged out) whatever happens
        components: list[bytes] = []
        for i in range(n):
            what = f"component {i + 1}"
            if files:
                text = _read_component_file(files[i], what)
            else:
                text = click.prompt(f"{what} of {name!r} (hex, not shown)", hide_input=True)
            value = _parse_component(text, what)
            _check_component(algorithm, value, components, i + 1)
            if i < len(component_kcvs):
                expected = _parse_kcv(component_kcvs[i], f"{what} check value")
            else:
                expected = _parse_kcv(click.prompt(f"{what} check value"), f"{what} check value")
            _check_kcv(algorithm, value, expected, what)
            click.echo(f"{what}: check value {expected.hex().upper()} ok")
            components.append(value)

        combined = components[0]
        for c in components[1:]:
            combined = cp.xor(combined, c)
        problem = key_problem(algorithm, combined)
        if problem is not None:
            raise KeyStoreError(f"combined key {name!r} is refused: {problem}")
        try:
            key = SecretKey(algorithm, combined, name)
        except UsageError as exc:
            raise DataError(str(exc), field="combined key") from None
        expected = _parse_kcv(
            kcv_text if kcv_text is not None else click.prompt("combined key check value"),
            "combined key check value",
        )
        _check_kcv(algorithm, combined, expected, f"combined key {name!r}")
        info = store.import_key(key, replace=replace)
        log.info(
            "imported key %r (%s, kcv %s) into %s", name, algorithm, info.kcv.hex(), info.location
        )
        click.echo(
            f"imported {name} ({algorithm}, kcv {info.kcv.hex().upper()}) into {info.location}"
        )


def _open_for_import(spec: str, create: bool) -> KeyStore:
    if spec.startswith(PKCS11_PREFIX) or Path(spec).exists():
        return open_store(spec)
    if not create:
        raise KeyStoreError(f"key store {spec}: file not found (use --create for a new one)")
    store = SoftwareKeyStore([], test_keys=False)
    store.save(spec, overwrite=False)
    return store


COMMANDS = [keys_group]

from cardperso.cli import keys_oda as _keys_oda  # noqa: E402, F401 - export-capk, oda-chain
from cardperso.cli import keys_pool as _keys_pool  # noqa: E402, F401 - registers `keys pool`
