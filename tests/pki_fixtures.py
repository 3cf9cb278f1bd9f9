"""A test PKI for the card's PKI application (issue 17): SM2 root and issuing CA keys in a
software key store (the sample store plus the native chips' transport masters), their
certificates made by ``cardperso pki ca``, a profile with a ``pki`` section (the temporary
SSSE-only product, so that GP cards and native chips both make it) and a prepared batch whose
records carry known PINs."""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cardperso.cli.pki import ca_cmd
from cardperso.crypto import kcv, random_bytes
from cardperso.crypto.sm2 import Sm2PrivateKey
from cardperso.keystore.poolgen import fill, open_or_create
from cardperso.keystore.sm2keys import sm2_entry
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions
from cardperso.line.runner import RunSummary, run_line
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine
from cardperso.storage.db import Database
from test_native_driver import NATIVE_3DES, NATIVE_SM4, native_store

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PkiLab:
    keys: Path
    profile: Path
    perso: Path
    chain: Path
    issuing_ca: Path
    root: Path
    pins: dict[str, str]  # card number -> PIN digits

    def store(self) -> SoftwareKeyStore:
        return SoftwareKeyStore.load(self.keys)


def pin_for(index: int) -> str:
    return f"{314159 + 7919 * index:06d}"[-6:]


def make_lab(
    tmp: Path, *, records: int = 2, seed: int = 5, ca_user_id: str = "default",
    encryption_pair: bool = True, batch_id: str = "PKI1", signing_key: str = "card",
    pool_keys: int | None = None, pki_extra: str = "",
    rows_hook: Callable[[list[dict[str, str]]], None] | None = None,
) -> PkiLab:  # fmt: skip
    """``signing_key: import`` fills the store's SM2 key pool (``KEYS.icc-pool/sm2``) with
    ``pool_keys`` keys (default: one per record and two spare). ``pki_extra``: more lines of
    the profile's ``pki`` section; ``rows_hook`` edits the synthetic batch's rows before
    preparation."""
    keys = native_store(tmp)
    doc = json.loads(keys.read_text())
    doc["keys"]["pki-root"] = sm2_entry(Sm2PrivateKey.generate())
    doc["keys"]["pki-issuing-ca"] = sm2_entry(Sm2PrivateKey.generate())
    admin_master = random_bytes(16)
    doc["keys"]["pki-admin-pin"] = {"algorithm": "SM4", "value": admin_master.hex().upper(),
                                    "kcv": kcv("SM4", admin_master).hex().upper(),
                                    "purpose": "PKI administrator PINs"}  # fmt: skip
    keys.write_text(json.dumps(doc))
    if signing_key == "import":
        fill_sm2_pool(keys, records + 2 if pool_keys is None else pool_keys)
    pki_dir = tmp / "pki"
    done = CliRunner().invoke(
        ca_cmd, ["--keys", str(keys), "--out-dir", str(pki_dir), "--ca-user-id", ca_user_id]
    )
    assert done.exit_code == 0, done.output
    profile = tmp / "ssc3-pki.yaml"
    base = (ROOT / "profiles" / "ssc3-temporary.yaml").read_text(encoding="utf-8")
    profile.write_text(
        base.replace("name: ssc3-temporary", "name: ssc3-pki")
        + "\npki:\n  issuing_ca_key: pki-issuing-ca\n  issuing_ca_certificate: pki/issuing-ca.pem\n"
        + f"  ca_user_id: {ca_user_id}\n  encryption_pair: {str(encryption_pair).lower()}\n"
        + "  pin_tries: 3\n  admin_pin_key: pki-admin-pin\n"
        + f"  signing_key: {signing_key}\n"
        + pki_extra,
        encoding="utf-8",
    )
    batch = tmp / "batch.csv"
    make_batch(batch, records, seed=seed)
    with batch.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows_hook is not None:
        rows_hook(rows)
    pins = {}
    for i, row in enumerate(rows):
        row["pin"] = pin_for(i)
        pins[row["card_no"]] = row["pin"]
    with batch.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    perso = tmp / "batch.perso"
    summary = prepare(
        batch, load_profile(profile), SoftwareKeyStore.load(keys),
        functools.partial(SoftwareKeyStore.load, keys), perso, tmp / "rejects.csv",
        PrepOptions(batch_id=batch_id, created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == records
    return PkiLab(keys, profile, perso, pki_dir / "chain.pem", pki_dir / "issuing-ca.pem",
                  pki_dir / "root.pem", pins)  # fmt: skip


def fill_sm2_pool(keys: Path, count: int) -> Path:
    """The SM2 key pool beside the store ``keys`` holding ``count`` free keys; its directory."""
    directory = Path(f"{keys}.icc-pool") / "sm2"
    directory.parent.mkdir(mode=0o700, exist_ok=True)
    with SoftwareKeyStore.load(keys) as store:
        pool = open_or_create(directory, store, bits=256, exponent=0, kek="transport-kek",
                              kind="sm2")  # fmt: skip
    fill(pool, functools.partial(SoftwareKeyStore.load, keys), count=count, workers=1)
    return directory


def run_mixed_line(
    lab: PkiLab, slot: Any, tmp: Path, db_path: Path, chips: tuple[str, ...], **factories: Any
) -> RunSummary:
    """The lab's batch on a one-station simulated line over pcscd + vpcd (``slot``), fed GP
    cards and native chips in the order ``chips`` names; results in ``tmp/results.csv``."""
    line = SimLine(
        1, tmp / "line", readers=[slot],
        options=LineOptions(card_timeout=5, pause_retry=0.2, max_attempts=3),
        chips=chips, native_transport={"SM4": NATIVE_SM4, "3DES": NATIVE_3DES},
    )  # fmt: skip
    with line:
        return run_line(lab.perso, line.spec, lab.store(), Database(db_path),
                        tmp / "results.csv", **factories)  # fmt: skip
