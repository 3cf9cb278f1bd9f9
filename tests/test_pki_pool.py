"""The SM2 key pool for the PKI application's imported signing keys (issue 17: "otherwise from a
key pool like the ICC RSA keys, with the private key sent to the card under the secure
channel"): the ICC pool's storage and rules for SM2 pairs, the line taking its keys from it,
an exhausted pool refused before the first card, and no key used twice after a crash.

Outside reference: OpenSSL derives each pool key's public half from its private key
(``openssl pkey -pubout`` on the PKCS#8 form) and it must be the public key the pool stored;
the line's cards are checked by ``openssl verify`` / ``pkeyutl -verify`` in
tests/test_pki_card.py and through ``cardperso pki verify`` in tests/test_pki_line.py.
"""

from __future__ import annotations

import base64
import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.errors import KeyStoreError, UsageError
from cardperso.keystore.pool import IccKeyPool, PoolKeys, Reservation
from cardperso.keystore.sm2keys import open_pool_keys
from cardperso.keystore.sm2pool import Sm2KeySource
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.layouts import x509
from cardperso.layouts.x509 import private_key_info, public_key_from_info
from cardperso.storage.db import Database
from openssl_cli import OPENSSL
from pki_fixtures import fill_sm2_pool, make_lab, run_mixed_line
from test_pki_card import made


def _store(tmp: Path) -> Path:
    path = tmp / "keys.json"
    generate_file(path)
    return path


def _every_key(directory: Path) -> PoolKeys:
    """Every key of a pool through a reservation-shaped view (no cursor moves)."""
    s = IccKeyPool(directory).state()
    segs = tuple((a, b) for a, b in s["segments"])
    view = Reservation(str(directory), s["bits"], s["exponent"], s["kek"], s["part_len"], 0,
                       s["generated"], segs, s.get("type", "rsa"))  # fmt: skip
    return view.read(0, s["generated"])


def test_pool_keys_are_protected_and_decrypt_to_their_public_half_as_openssl_derives_it(
    tmp_path: Path,
) -> None:
    keys = _store(tmp_path)
    directory = fill_sm2_pool(keys, 5)
    status = IccKeyPool(directory).status()
    assert (status.kind, status.total, status.free, status.bits) == ("sm2", 5, 5, 256)
    stored = _every_key(directory)
    assert len(set(stored.moduli)) == 5 and all(len(p) == 64 for p in stored.moduli)
    with SoftwareKeyStore.load(keys) as store:
        pairs = open_pool_keys(store, stored)
    for i, key in enumerate(pairs):
        der = private_key_info(key.to_bytes(), key.public_key.to_bytes())
        pem = "-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der).decode()
        pem += "-----END PRIVATE KEY-----\n"
        out = subprocess.run([OPENSSL, "pkey", "-pubout", "-outform", "DER"], input=pem.encode(),
                             capture_output=True, check=False, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert public_key_from_info(out.stdout) == b"\x04" + stored.moduli[i]
    # at rest: files 0600 in a 0700 directory, no private key in clear in any of them
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path.name
        blob = path.read_bytes()
        for key in pairs:
            d = key.to_bytes()
            assert d not in blob and d.hex().encode() not in blob.lower(), path.name
    # a record whose private part does not belong to its public half is refused by position
    bad = PoolKeys(stored.bits, 0, stored.kek, stored.part_len, (stored.moduli[1],),
                   stored.wrapped(0), (7,), "sm2")  # fmt: skip
    with SoftwareKeyStore.load(keys) as store, pytest.raises(KeyStoreError, match="key 7"):
        open_pool_keys(store, bad)


def test_cli_generate_and_status_sm2_print_counts_never_key_material(tmp_path: Path) -> None:
    _register()
    keys = _store(tmp_path)
    runner = CliRunner()
    done = runner.invoke(cli, ["keys", "pool", "generate", str(keys), "--type", "sm2",
                               "--count", "6", "--workers", "2"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "6 SM2 keys" in done.output and "6 free of 6" in done.output
    status = runner.invoke(cli, ["keys", "pool", "status", str(keys), "--type", "sm2"])
    assert status.exit_code == 0, status.output
    assert "SM2 key pairs" in status.output and "free 6" in status.output
    with SoftwareKeyStore.load(keys) as store:
        for key in open_pool_keys(store, _every_key(Path(f"{keys}.icc-pool/sm2"))):
            assert key.to_bytes().hex().upper() not in status.output + done.output
    refused = runner.invoke(cli, ["keys", "pool", "generate", str(keys), "--type", "sm2",
                                  "--bits", "1024", "--count", "1"])  # fmt: skip
    assert refused.exit_code == 2 and "--bits is for RSA pools" in refused.output
    assert "Traceback" not in refused.output


def test_a_source_reserves_in_blocks_and_a_dry_pool_fails_the_take(tmp_path: Path) -> None:
    keys = _store(tmp_path)
    with SoftwareKeyStore.load(keys) as store, pytest.raises(UsageError, match="--type sm2"):
        Sm2KeySource(tmp_path / "nowhere", store).check(0)  # no pool: the command that makes one
    directory = fill_sm2_pool(keys, 3)
    with SoftwareKeyStore.load(keys) as store:
        with pytest.raises(UsageError, match=r"needs 4 keys, 3 are free.*--type sm2"):
            Sm2KeySource(directory, store).check(4)
        assert IccKeyPool(directory).status().used == 0, "a refused check reserves nothing"
        source = Sm2KeySource(directory, store)
        source.check(2)
        first = [source.take() for _ in range(2)]
        assert IccKeyPool(directory).status().used == 2  # one block: the run's two cards
        third = source.take()  # a rejected card's remake: one more key
        assert len({k.public_key.to_bytes() for k in [*first, third]}) == 3
        with pytest.raises(KeyStoreError, match="no free key left"):
            source.take()
        # an RSA pool, or another KEK, is not a source of SM2 keys
        (tmp_path / "other").mkdir()
        other = _store(tmp_path / "other")
        with SoftwareKeyStore.load(other) as wrong, pytest.raises(UsageError, match="KEK"):
            Sm2KeySource(directory, wrong).check(0)


def test_import_takes_the_pool_keys_on_gp_and_native_chips(tmp_path: Path) -> None:
    """``signing_key: import``: each chip's signing pair is the next pool key; the card holds
    that private key and its certificate certifies that public key (openssl checks the chain
    and signature of such cards in test_pki_card)."""
    (tmp_path / "lab").mkdir()
    lab = make_lab(tmp_path / "lab", records=2, signing_key="import", encryption_pair=False,
                   pool_keys=4)  # fmt: skip
    directory = Path(f"{lab.keys}.icc-pool/sm2")
    stored = _every_key(directory)
    seen = []
    for n, kind in enumerate(("gp", "native")):
        (tmp_path / kind).mkdir()
        card, _, _, _ = made(lab, kind, tmp_path / kind, index=n)
        held = card.state.pki.files["0018"]
        cert = x509.decode_certificate(held[: 4 + int.from_bytes(held[2:4], "big")])
        seen.append(cert.public_key)
        assert card.state.pki.files["0013"] == open_pool_keys(lab.store(), stored)[n].to_bytes()
    assert seen == [b"\x04" + stored.moduli[0], b"\x04" + stored.moduli[1]]
    assert IccKeyPool(directory).status().used == 2


def test_the_line_refuses_a_short_pool_before_the_first_card_then_makes_the_batch(  # type: ignore[no-untyped-def]
    pcsc_lab, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path))
    lab = make_lab(tmp_path, records=2, seed=43, signing_key="import", encryption_pair=False,
                   batch_id="PKIP", pool_keys=1)  # fmt: skip
    directory = Path(f"{lab.keys}.icc-pool/sm2")
    db_path = tmp_path / "journal.db"
    with pytest.raises(UsageError, match="needs 2 keys, 1 are free"):
        run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, db_path, ("gp", "native"))
    assert IccKeyPool(directory).status().used == 0
    assert Database(db_path).execute("SELECT COUNT(*) FROM pki_certificates")[0][0] == 0
    assert not (tmp_path / "results.csv").exists(), "no run was opened, no card was fed"
    fill_sm2_pool(lab.keys, 3)
    summary = run_mixed_line(lab, pcsc_lab.free_slot(), tmp_path, db_path, ("gp", "native"))
    assert summary.done == 2 and summary.failed == 0, summary
    stored = _every_key(directory)
    with (tmp_path / "results.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    ledger = Database(db_path).execute("SELECT COUNT(*) FROM pki_certificates")[0][0]
    assert ledger == 2
    status = IccKeyPool(directory).status()
    assert (status.used, status.reservations) == (2, 1), "one block for the run's two cards"
    assert len(set(stored.moduli[:2])) == 2


_CONSUMER = """
import sys
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.keystore.sm2pool import Sm2KeySource
store = SoftwareKeyStore.load(sys.argv[1])
source = Sm2KeySource(sys.argv[2], store, label="killed")
source.check(int(sys.argv[3]))
with open(sys.argv[4], "a") as out:
    while True:
        key = source.take()
        out.write(key.public_key.to_bytes().hex() + "\\n")
        out.flush()
        sys.stdin.readline()  # the test says when to take the next key
"""


def test_kill_9_of_a_consumer_mid_run_then_the_next_never_reuses_a_key(tmp_path: Path) -> None:
    keys = _store(tmp_path)
    directory = fill_sm2_pool(keys, 20)
    used = tmp_path / "used.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CONSUMER), str(keys), str(directory), "8",
         str(used)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, stdin=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(b"\n\n")  # 3 keys, then it waits: killed there, not where the scheduler says
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not used.exists() or len(used.read_text().splitlines()) < 3
    ):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdin.close()
    taken = set(used.read_text().split())
    assert len(taken) == 3, "killed mid-way"
    status = IccKeyPool(directory).status()
    assert status.used == 8, "the killed run's block stays used: the rest of it is wasted"
    with SoftwareKeyStore.load(keys) as store:
        source = Sm2KeySource(directory, store)
        source.check(12)
        after = {source.take().public_key.to_bytes().hex() for _ in range(12)}
        assert not after & taken
        with pytest.raises(KeyStoreError):
            source.take()
    assert IccKeyPool(directory).status().free == 0


def test_a_profile_names_its_pool_relative_to_its_directory(tmp_path: Path) -> None:
    """``pki.key_pool``: the pool's directory, relative to the profile's (a PKCS#11 store has
    no file to keep the pool beside); it is checked before the first card like the default."""
    from cardperso.chip.pki import pki_step
    from cardperso.keystore.poolgen import fill, open_or_create
    from cardperso.profiles.loader import load_profile

    (tmp_path / "lab").mkdir()
    lab = make_lab(tmp_path / "lab", records=1, signing_key="import", pool_keys=0)
    text = lab.profile.read_text(encoding="utf-8")
    lab.profile.write_text(text + "  key_pool: pools/pki-sm2\n", encoding="utf-8")
    profile = load_profile(lab.profile)
    db = Database(tmp_path / "j.db")
    with pytest.raises(UsageError, match=r"no SM2 key pool at .*pools/pki-sm2"):
        pki_step(profile, lab.store(), db)
    directory = lab.profile.parent / "pools" / "pki-sm2"
    directory.parent.mkdir()
    with SoftwareKeyStore.load(lab.keys) as store:
        pool = open_or_create(directory, store, bits=256, exponent=0, kek="transport-kek",
                              kind="sm2")  # fmt: skip
        fill(pool, lambda: SoftwareKeyStore.load(lab.keys), count=1, workers=1)
    step = pki_step(profile, lab.store(), db)
    assert step is not None and step.key_source is not None
    assert step.key_source.pool.directory == directory
    step.check_pool(1)
    with pytest.raises(UsageError, match="needs 2 keys, 1 are free"):
        step.check_pool(2)
