"""The PIN seed (every seeded PIN derives from it) need not be typed on the command line, where
other users and the shell history see it: ``cardperso prep --pin-seed env:VAR`` or
``file:PATH`` (0600); hex on the command line still works and is logged as a warning."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardperso.cli.main import _register, cli
from cardperso.keystore.software import generate_file
from cardperso.prep.synth import make_batch

SEED = secrets.token_bytes(16)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    make_batch(tmp_path / "batch.csv", 3, seed=8)
    generate_file(tmp_path / "keys.json")
    # the reference product's ODA: every run gets the same ICC keys from its own pool copy
    _register()
    made = CliRunner().invoke(cli, ["keys", "pool", "generate", str(tmp_path / "keys.json"),
                                    "--bits", "1024", "--count", "3", "--pool-dir",
                                    str(tmp_path / "pools")])  # fmt: skip
    assert made.exit_code == 0, made.output
    return tmp_path


def _prep(work: Path, out: str, seed_arg: str) -> tuple[int, str]:
    _register()
    pool = work / f"pool-{out}"
    shutil.copytree(work / "pools" / "rsa1024", pool)
    result = CliRunner().invoke(
        cli,
        [
            "prep", str(work / "batch.csv"), "--profile", "ssc3-pboc",
            "--keys", str(work / "keys.json"), "--out", str(work / out),
            "--rejects", str(work / f"{out}.rejects.csv"), "--created", "1700000000",
            "--batch-id", "S", "--pin-seed", seed_arg, "--icc-pool", str(pool),
        ],
    )  # fmt: skip
    return result.exit_code, result.output


def test_env_file_and_command_line_seeds_give_the_same_file(
    work: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CARDPERSO_TEST_PIN_SEED", SEED.hex())
    seed_file = work / "seed.hex"
    seed_file.write_text(SEED.hex().upper() + "\n")
    os.chmod(seed_file, 0o600)
    assert _prep(work, "env.perso", "env:CARDPERSO_TEST_PIN_SEED")[0] == 0
    assert _prep(work, "file.perso", f"file:{seed_file}")[0] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert _prep(work, "argv.perso", SEED.hex())[0] == 0
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "command line" in warning.getMessage() and SEED.hex() not in warning.getMessage()
    env, file, argv = ((work / n).read_bytes() for n in ("env.perso", "file.perso", "argv.perso"))
    assert env == file == argv


def test_bad_seed_sources_are_refused_without_repeating_the_value(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDPERSO_TEST_PIN_SEED", raising=False)
    code, out = _prep(work, "a.perso", "env:CARDPERSO_TEST_PIN_SEED")
    assert code == 2 and "not set" in out
    open_file = work / "seed.hex"
    open_file.write_text(SEED.hex())
    os.chmod(open_file, 0o644)
    code, out = _prep(work, "b.perso", f"file:{open_file}")
    assert code == 2 and "chmod 600" in out and SEED.hex() not in out
    code, out = _prep(work, "c.perso", "zz" + SEED.hex())
    assert code == 2 and "must be hex" in out and SEED.hex() not in out
