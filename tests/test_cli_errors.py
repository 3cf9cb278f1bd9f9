"""The command line prints one line for expected errors (no traceback) with distinct exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardperso", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.startswith("cardperso, version ")


def test_missing_output_directory_is_one_line_exit_1(tmp_path: Path) -> None:
    out = _run(
        "prep", "examples/batch.csv", "--profile", "ssc3-pboc", "--keys", "keys-sample/keys.json",
        "--out", str(tmp_path / "missing" / "x.perso"), "--rejects", str(tmp_path / "r.csv"),
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: ")
    assert "missing" in out.stderr


def test_usage_error_exit_2() -> None:
    out = _run("prep")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.rstrip().endswith("Error: Missing argument 'INPUT'."), out.stderr


def test_bad_key_store_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text('{"format": "cardperso-keystore/1", "test_keys": false, "keys": {"k": {"algorithm": "3DES", '
                   '"value": "00112233445566778899AABBCCDDEEFF", "kcv": "000000"}}}')  # fmt: skip
    out = _run("keys", "check", str(bad))
    assert out.returncode == 1 and "'k'" in out.stderr and "00112233" not in out.stderr + out.stdout
