"""The production guard on the command line (issue 5): ``--production`` refuses the published
sample keys (recognised by their check values, whatever their names), test keys and a software
key store unless ``--allow-software-keystore``, whose use is logged at WARNING."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cardperso.cli.production import check_production
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import KeyStoreError
from cardperso.keystore.software import SoftwareKeyStore, generate_file

SAMPLE_KEYS = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"


def _overrides(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "--allow-software-keystore" in r.getMessage()
    ]


def test_production_refuses_a_software_store_without_the_override(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json")
    with pytest.raises(KeyStoreError, match="software key store"):
        check_production(store, production=True, allow_software_keystore=False, what="prep x")


def test_the_override_is_logged_at_warning_naming_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = generate_file(tmp_path / "keys.json")
    with caplog.at_level(logging.INFO, logger="cardperso.production"):
        check_production(store, production=True, allow_software_keystore=True, what="prep x")
    (warning,) = _overrides(caplog)
    assert "PRODUCTION OVERRIDE" in warning.getMessage()
    assert str(tmp_path / "keys.json") in warning.getMessage()


def test_production_refuses_the_sample_keys_even_with_the_override(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    with pytest.raises(KeyStoreError, match=r"published sample key|test key"):
        check_production(store, production=True, allow_software_keystore=True, what="run x")
    assert len(_overrides(caplog)) == 1  # the override was logged before the refusal


def test_a_sample_key_is_recognised_by_its_check_value_under_any_name(tmp_path: Path) -> None:
    """A fresh store (not marked test) holding one sample key value under another name."""
    store = generate_file(tmp_path / "keys.json")
    sample = json.loads(SAMPLE_KEYS.read_text())["keys"]["pboc-imk-ac"]
    store.import_key(SecretKey("3DES", bytes.fromhex(sample["value"]), "issuer-ac-2026"))
    with pytest.raises(KeyStoreError, match="'issuer-ac-2026': it is a published sample key"):
        check_production(store, production=True, allow_software_keystore=True, what="prep x")


def test_not_production_changes_nothing_and_says_the_flag_is_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    check_production(store, production=False, allow_software_keystore=False, what="prep x")
    assert not caplog.records
    check_production(store, production=False, allow_software_keystore=True, what="prep x")
    assert "no effect" in caplog.records[-1].getMessage()


@pytest.mark.hsm
def test_an_hsm_store_of_fresh_keys_passes_without_override(
    hsm_store_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    store = hsm_store_factory()
    store.generate_key("pboc-imk-ac", "3DES", 16)
    store.generate_key("transport-kek", "3DES", 16)
    check_production(store, production=True, allow_software_keystore=False, what="prep x")
    assert not _overrides(caplog)


# -- on the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_perso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small perso file prepared with the sample keys, and a line file beside it."""
    import functools

    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch
    from cardperso.profiles.loader import load_profile

    tmp = tmp_path_factory.mktemp("production")
    make_batch(tmp / "batch.csv", 2, seed=3)
    opener = functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS)
    out = tmp / "batch.perso"
    prepare(
        tmp / "batch.csv", load_profile("ssc3-pboc"), opener(), opener, out,
        tmp / "rejects.csv", PrepOptions(batch_id="P", created=1_700_000_000),
    )  # fmt: skip
    (tmp / "line.yaml").write_text(
        "stations:\n  - {name: st1, printer: /nonexistent/tty, reader: no reader}\n"
    )
    return out


def _cli(args: list[str]) -> Any:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    return CliRunner().invoke(cli, args)


def _run_args(perso: Path, keys: Path, *flags: str) -> list[str]:
    return [
        "run", str(perso), "--line", str(perso.parent / "line.yaml"), "--keys", str(keys),
        "--db", str(perso.parent / "journal.db"), *flags,
    ]  # fmt: skip


def test_run_production_refuses_a_software_store_and_the_sample_keys(
    sample_perso: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = _cli(_run_args(sample_perso, SAMPLE_KEYS, "--production"))
    assert plain.exit_code == 1 and "software key store" in plain.output, plain.output
    override = _cli(
        _run_args(sample_perso, SAMPLE_KEYS, "--production", "--allow-software-keystore")
    )
    assert override.exit_code == 1 and "published sample key" in override.output, override.output
    assert len(_overrides(caplog)) == 1
    assert not (sample_perso.parent / "journal.db").exists(), "refused before the journal opened"


def test_run_production_with_fresh_keys_and_the_override_passes_the_guard(
    sample_perso: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the guard, the run goes on to check the file: here it was prepared with the sample
    KEK, so the fresh store's KEK is refused by check value (and no card is touched)."""
    generate_file(tmp_path / "keys.json")
    result = _cli(
        _run_args(sample_perso, tmp_path / "keys.json", "--production", "--allow-software-keystore")
    )
    assert result.exit_code != 0 and "different 'transport-kek'" in result.output, result.output
    (warning,) = _overrides(caplog)
    assert str(tmp_path / "keys.json") in warning.getMessage()
    without = _cli(_run_args(sample_perso, tmp_path / "keys.json"))
    assert (
        "different 'transport-kek'" in without.output and "software key store" not in without.output
    )


@pytest.fixture
def production_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``ssc3-prod``: the reference profile marked ``production: true``, found by name."""
    from cardperso.profiles.loader import load_profile

    reference = load_profile("ssc3-pboc")
    text = Path(reference.source).read_text(encoding="utf-8")
    text = text.replace("name: ssc3-pboc", "name: ssc3-prod", 1) + "\nproduction: true\n"
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ssc3-prod.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("CARDPERSO_PROFILES", str(tmp_path / "profiles"))
    profile = load_profile("ssc3-prod")
    assert profile.production and not reference.production
    return profile.name


def test_a_production_profile_makes_every_run_a_production_run(
    production_profile: str, tmp_path: Path
) -> None:
    import functools

    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch
    from cardperso.profiles.loader import load_profile

    make_batch(tmp_path / "batch.csv", 1, seed=4)
    opener = functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS)
    perso = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", load_profile(production_profile), opener(), opener, perso,
        tmp_path / "rejects.csv", PrepOptions(batch_id="Q", created=1_700_000_000),
    )  # fmt: skip
    (tmp_path / "line.yaml").write_text(
        "stations:\n  - {name: st1, printer: /nonexistent/tty, reader: no reader}\n"
    )
    result = _cli(_run_args(perso, SAMPLE_KEYS))  # no --production: the profile says so
    assert result.exit_code == 1 and "software key store" in result.output, result.output


def _prep_args(tmp: Path, keys: Path, profile: str, *flags: str) -> list[str]:
    from cardperso.prep.synth import make_batch

    if not (tmp / "batch.csv").exists():
        make_batch(tmp / "batch.csv", 2, seed=6)
    return [
        "prep", str(tmp / "batch.csv"), "--profile", profile, "--keys", str(keys),
        "--out", str(tmp / "batch.perso"), "--rejects", str(tmp / "rejects.csv"), *flags,
    ]  # fmt: skip


def test_prep_production_refuses_a_software_store_and_the_sample_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = _cli(_prep_args(tmp_path, SAMPLE_KEYS, "ssc3-pboc", "--production"))
    assert plain.exit_code == 1 and "software key store" in plain.output, plain.output
    override = _cli(
        _prep_args(tmp_path, SAMPLE_KEYS, "ssc3-pboc", "--production", "--allow-software-keystore")
    )
    assert override.exit_code == 1 and "published sample key" in override.output
    assert len(_overrides(caplog)) == 1
    assert not (tmp_path / "batch.perso").exists(), "refused before anything was prepared"


def test_prep_production_with_fresh_keys_and_the_override_prepares_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generate_file(tmp_path / "keys.json")
    pool = _cli(["keys", "pool", "generate", str(tmp_path / "keys.json"), "--bits", "1024",
                 "--count", "2"])  # the reference product's ODA: its ICC keys  # fmt: skip
    assert pool.exit_code == 0, pool.output
    flags = ("--production", "--allow-software-keystore")
    result = _cli(_prep_args(tmp_path, tmp_path / "keys.json", "ssc3-pboc", *flags))
    assert result.exit_code == 0 and "prepared 2, rejected 0" in result.output, result.output
    (warning,) = _overrides(caplog)
    assert "PRODUCTION OVERRIDE" in warning.getMessage()
    assert str(tmp_path / "keys.json") in warning.getMessage()


def test_prep_with_a_production_profile_is_a_production_run(
    production_profile: str, tmp_path: Path
) -> None:
    result = _cli(_prep_args(tmp_path, SAMPLE_KEYS, production_profile))
    assert result.exit_code == 1 and "software key store" in result.output, result.output
    assert not (tmp_path / "batch.perso").exists()
