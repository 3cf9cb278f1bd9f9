"""``cardperso pki`` at its edges (issue 17): ``pki ca`` writes a test PKI that ``openssl
verify`` accepts (default user ID with ``-vfyopt distid``, or the empty ID without), public
files mode 0644; bad input gives one line naming the field and the right exit code (1 data,
2 usage), before any reader is opened, never a traceback."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pki_fixtures import make_lab


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardperso", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_lab(tmp_path_factory.mktemp("pkicli"), records=1)


@pytest.mark.parametrize("user_id", ["default", "empty"])
def test_pki_ca_writes_a_pki_openssl_verifies(lab, tmp_path: Path, user_id: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "pki"
    done = cli("pki", "ca", "--keys", lab.keys, "--out-dir", out, "--ca-user-id", user_id)
    assert done.returncode == 0, done.stderr
    for name in ("root.pem", "issuing-ca.pem", "chain.pem"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, "certificates are public"
    vfy = ["-vfyopt", "distid:1234567812345678"] if user_id == "default" else []
    checked = subprocess.run(
        ["openssl", "verify", *vfy, "-CAfile", str(out / "root.pem"), str(out / "issuing-ca.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.stdout.strip().endswith(": OK"), checked.stdout + checked.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(out / "issuing-ca.pem"), "-noout",
                           "-text"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "CA:TRUE, pathlen:0" in text and "SM2-with-SM3" in text


def test_bad_input_is_one_line_with_its_exit_code(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    pin = tmp_path / "pin"
    pin.write_text("12ab56")
    cases = [
        (("pki", "verify", "--reader", "none", "--chain", junk, "--pin-file", pin), 2,
         "not an X.509 certificate"),
        (("pki", "verify", "--reader", "none", "--chain", lab.chain, "--pin-file", pin), 1,
         "a PIN is 4 to 12 digits"),
        (("pki", "unblock", "--reader", "none", "--keys", lab.keys, "--card-no", "12-45"), 1,
         "a card number is 9 characters"),
        (("pki", "crl", "--db", tmp_path / "r.db", "--keys", lab.keys, "--issuer-cert",
          lab.issuing_ca, "--out", lab.issuing_ca), 2, "--out"),
        (("pki", "crl", "--db", tmp_path / "r.db", "--keys", lab.keys, "--issuer-key", "pki-root",
          "--issuer-cert", lab.issuing_ca, "--out", tmp_path / "crl.pem"), 2,
         "certifies another key than 'pki-root'"),
    ]  # fmt: skip
    for args, code, words in cases:
        done = cli(*args)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "12ab56" not in done.stderr, "the PIN is never echoed"
    assert not (tmp_path / "crl.pem").exists()
