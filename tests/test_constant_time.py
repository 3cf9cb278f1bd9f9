"""Cryptograms, MACs and check values are compared in constant time (issue 5).

A heuristic over the source tree: every ``==`` / ``!=`` whose operands name a MAC, a
cryptogram, a check value, an ARQC/ARPC/TC (identifier parts such as ``mac``, ``cmac``,
``cryptogram``, ``kcv``, ``arqc``, ``arpc``, ``tc``) or is computed by a MAC, cipher or
check-value function (``mac_algorithm3(...)``, ``ecb_encrypt(...)``, ``kcv(...)``,
``hmac.digest(...)``...) is an offender: such values must go through
:func:`cardperso.crypto.equal`, :func:`cardperso.crypto.verify_mac` or
:func:`hmac.compare_digest`. Comparisons with a literal (``method == "cmac"``,
``cid != "ARQC"``) and of lengths (``len(mac) != 8``) are not secret comparisons.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardperso import crypto
from cardperso.crypto import primitives as cp
from cardperso.errors import MacMismatch

SRC = Path(__file__).resolve().parents[1] / "src" / "cardperso"

#: Identifier parts (snake_case or camelCase pieces) that name a MAC, cryptogram or check value.
SECRET_PARTS = frozenset(
    {
        "mac", "macs", "cmac", "hmac", "rmac", "cryptogram", "cryptograms", "kcv", "kcvs",
        "arqc", "arpc", "tc", "aac", "ac",
    }
)  # fmt: skip
#: Functions whose results are MACs, cryptograms, ciphertexts or check values.
SECRET_CALLS = frozenset(
    {
        "ecb_encrypt", "cbc_encrypt", "encrypt", "mac", "mac_algorithm1", "mac_algorithm3",
        "cmac", "kcv", "digest", "application_cryptogram", "arpc_method1",
        "arpc_method2", "issuer_script_mac", "scp02_mac", "scp02_card_cryptogram",
        "scp02_host_cryptogram", "scp03_cryptogram", "make_arpc", "script_mac",
    }
)  # fmt: skip
#: Calls whose result is never a secret value (lengths, types, the comparison helpers).
HARMLESS_CALLS = frozenset({"len", "type", "isinstance", "bool", "int", "str", "ord"})


def _parts(identifier: str) -> set[str]:
    pieces = re.split(r"_|(?<=[a-z0-9])(?=[A-Z])", identifier)
    return {p.lower() for p in pieces if p}


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _is_secret_operand(node: ast.expr, imported: frozenset[str] = frozenset()) -> bool:
    if isinstance(node, ast.Constant):
        return False
    if isinstance(node, ast.Call) and _call_name(node) in HARMLESS_CALLS:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _call_name(sub) in HARMLESS_CALLS:
            return False  # e.g. len(mac) + 2 == n
        if isinstance(sub, ast.Call) and _call_name(sub) in SECRET_CALLS:
            return True
        name = (
            sub.id
            if isinstance(sub, ast.Name)
            else sub.attr
            if isinstance(sub, ast.Attribute)
            else ""
        )
        if isinstance(sub, ast.Name) and name in imported:
            continue  # a module or function imported by name is not a value (layouts.pboc_ac)
        if name and _parts(name) & SECRET_PARTS:
            return True
    return False


def _imported_names(tree: ast.AST) -> frozenset[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return frozenset(names)


def offenders(source: str, filename: str = "<string>") -> Iterator[str]:
    """``file:line: expression`` of every ``==``/``!=`` that compares secret-like values."""
    tree = ast.parse(source, filename)
    imported = _imported_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if not isinstance(op, ast.Eq | ast.NotEq):
                continue
            if isinstance(left, ast.Constant) or isinstance(right, ast.Constant):
                continue
            if _is_secret_operand(left, imported) or _is_secret_operand(right, imported):
                yield f"{filename}:{node.lineno}: {ast.unparse(node)}"


def test_the_heuristic_flags_plain_comparisons_and_passes_constant_time_ones() -> None:
    flagged = """
if mac != expected_mac: pass
if cp.kcv("AES", key) == kcv_given: pass
if received == mac_algorithm3(key, data): pass
if self.card_cryptogram != expected: pass
if hmac.digest(k, m, "sha256")[:16] == tag: pass
if arqc == computed: pass
if resp.data[:8] == cardCryptogram: pass
import pboc_ac
if pboc_ac.compute(x) == arqc: pass
"""
    passed = """
if not cp.equal(mac, expected): pass
cp.verify_mac(expected, received, "C-MAC")
if hmac.compare_digest(a_mac, b_mac): pass
if len(mac) != 8: pass
if method == "cmac": pass
if first.cid != "ARQC": pass
if machine == other_machine: pass
if len(arqc) + 2 == n: pass
from cardperso.layouts import pboc_ac
if iad.algorithm == pboc_ac.ALGORITHM_3DES: pass
"""
    assert len(list(offenders(flagged))) == 8, list(offenders(flagged))
    assert list(offenders(passed)) == []


def test_source_compares_macs_cryptograms_and_check_values_in_constant_time() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    found = [o for path in files for o in offenders(path.read_text(encoding="utf-8"), str(path))]
    assert not found, "compare these with cardperso.crypto.equal / verify_mac:\n" + "\n".join(found)


def test_the_comparison_helpers_are_constant_time() -> None:
    """``equal`` and ``verify_mac`` rest on hmac.compare_digest, and verification raises."""
    assert crypto.equal is cp.equal and crypto.verify_mac is cp.verify_mac
    assert "compare_digest" in inspect.getsource(cp.equal)
    assert "equal(" in inspect.getsource(cp.verify_mac) or "compare_digest" in inspect.getsource(
        cp.verify_mac
    )
    assert cp.equal(b"\x01\x02", b"\x01\x02") and not cp.equal(b"\x01\x02", b"\x01\x03")
    assert not cp.equal(b"\x01", b"\x01\x02")
    cp.verify_mac(b"\xaa" * 8, b"\xaa" * 8, "C-MAC")
    with pytest.raises(MacMismatch, match=r"^C-MAC does not verify$"):
        cp.verify_mac(b"\xaa" * 8, b"\xab" + b"\xaa" * 7, "C-MAC")
    with pytest.raises(MacMismatch, match=r"^MAC does not verify$"):  # the default name
        cp.verify_mac(b"\xaa" * 8, b"\xaa" * 7)
