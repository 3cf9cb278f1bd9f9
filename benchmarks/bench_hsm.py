"""PKCS#11 (SoftHSM2) throughput: per-call vs batched ECB, strict vs fast derivation.

Run: ``.venv/bin/python benchmarks/bench_hsm.py [--cards 2000] [--repeat 3]``

The script sets up its own SoftHSM2 token in a temporary directory (PINs typed at
softhsm2-util's prompt through a pty, as the test fixture does), imports the published sample
keys and prints a Markdown table. Figures are the best of ``--repeat`` runs; record them in
``docs/security-officers.md`` with the machine they came from.

Measured:

1. ``C_Encrypt`` DES3-ECB / AES-ECB, one call per block vs one call over all blocks;
2. per-card key derivation (EMV option A, one master) in strict mode (``C_DeriveKey`` +
   ``C_WrapKey`` + KCV per card, AES KEK), fast mode (2 ``C_Encrypt`` per chunk) and the software
   store;
3. GP diversification (3 keys per card) and the key work of data preparation per card (three
   PBOC master keys, four SSSE 3DES keys, one padded PIN block wrap) in each mode;
4. data preparation end to end (``cardperso.prep.pipeline.prepare``, profile ``ssc2-pboc``, one
   worker) with each store (fast and strict with the AES KEK, the software store with 3DES).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pkcs11 import Mechanism  # noqa: E402

from cardperso.keystore.base import KeyStore  # noqa: E402
from cardperso.keystore.pkcs11 import Pkcs11KeyStore  # noqa: E402
from cardperso.keystore.software import SoftwareKeyStore  # noqa: E402
from cardperso.prep.pipeline import PrepOptions, prepare  # noqa: E402
from cardperso.prep.synth import make_batch  # noqa: E402
from cardperso.profiles.loader import load_profile  # noqa: E402
from fixtures_hsm import SOFTHSM_MODULE, init_token  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from keystore_contract import contract_keys  # type: ignore[import-not-found,unused-ignore]  # noqa: E402

PIN_ENV = "CARDPERSO_BENCH_HSM_PIN"
AES_KEK = "transport-kek-aes"
DES_KEK = "transport-kek"


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def per_block(obj: Any, block: bytes, mech: Mechanism, count: int) -> None:
    for _ in range(count):
        obj.encrypt(block, mechanism=mech)


def run_prep(batch: Path, store: KeyStore, kek: str) -> None:
    profile = dataclasses.replace(load_profile("ssc2-pboc"), transport_kek=kek)
    out = batch.with_suffix(f".{secrets.token_hex(4)}.perso")
    options = PrepOptions(batch_id="BENCH", created=1_790_000_000, chunk_size=1000)
    summary = prepare(batch, profile, store, lambda: store, out, out.with_suffix(".rej"), options)
    assert summary.prepared == summary.read


def setup_token() -> tuple[str, str]:
    root = Path(tempfile.mkdtemp(prefix="bench-softhsm-"))
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(8)
    init_token(conf, "bench", secrets.token_hex(8), pin)
    os.environ[PIN_ENV] = pin
    return "bench", f"env:{PIN_ENV}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1000)
    args = ap.parse_args()
    n, rep = args.cards, args.repeat

    label, pin_source = setup_token()
    keys = contract_keys()
    strict = Pkcs11KeyStore(SOFTHSM_MODULE, label, pin_source, chunk_size=args.chunk)
    fast = Pkcs11KeyStore(
        SOFTHSM_MODULE, label, pin_source, mode="fast", chunk_size=args.chunk, label_prefix=""
    )
    for key in keys.values():
        if key.algorithm in ("3DES", "AES"):
            strict.import_key(key, test_key=True)
    soft = SoftwareKeyStore(keys.values(), test_keys=True)

    rows: list[tuple[str, str, str]] = []

    def row(what: str, seconds: float, per: int, unit: str) -> None:
        rows.append(
            (what, f"{seconds * 1e6 / per:.2f} µs/{unit}", f"{per / seconds:,.0f} {unit}/s")
        )

    # 1. per-call vs batched ECB
    for alg, name, mech, block in (
        ("DES3-ECB", "pboc-imk-ac", Mechanism.DES3_ECB, 8),
        ("AES-ECB", "gp-kmc-aes", Mechanism.AES_ECB, 16),
    ):
        obj = strict._key(name)
        blocks = 2000
        one = bytes(block)
        many = bytes(block * blocks)
        t = best(partial(per_block, obj, one, mech, blocks), rep)
        row(f"{alg} C_Encrypt, one call per block ({blocks} calls)", t, blocks, "block")
        t = best(partial(obj.encrypt, many, mechanism=mech), rep)
        row(f"{alg} C_Encrypt, one call over {blocks} blocks", t, blocks, "block")

    # 2. EMV option A per-card keys
    cards = [(f"621700{i:010d}", f"{i % 100:02d}") for i in range(n)]
    imk = "pboc-imk-ac"
    stores: list[tuple[str, KeyStore, str]] = [
        ("software store", soft, DES_KEK),
        ("PKCS#11 fast, 3DES KEK", fast, DES_KEK),
        ("PKCS#11 fast, AES KEK", fast, AES_KEK),
        ("PKCS#11 strict, AES KEK", strict, AES_KEK),
    ]
    for what, store, kek in stores:
        t = best(partial(store.derive_emv_a, imk, cards, wrap_under=kek), rep)
        row(f"EMV option A, {n} cards, {what}", t, n, "card")

    # 3. GP diversification and the data-preparation key work per card
    kdds = [bytes(2) + i.to_bytes(8, "big") for i in range(n)]
    factors = [i.to_bytes(8, "big") for i in range(n)]
    pins = b"".join(bytes.fromhex("241234FFFFFFFFFF") for _ in range(n))

    def prep_keys(store: KeyStore, kek: str) -> None:
        for master in ("pboc-imk-ac", "pboc-imk-smi", "pboc-imk-smc"):
            store.derive_emv_a(master, cards, wrap_under=kek)
        for master in ("ssse-mk-3des", "ssse-uk-ef05-3des", "ssse-uk-ef06-3des", "ssse-irk-3des"):
            store.derive_ssse(master, factors, wrap_under=kek)
        store.wrap(kek, pins)

    stores = [
        ("software store", soft, DES_KEK),
        ("PKCS#11 fast", fast, AES_KEK),
        ("PKCS#11 strict", strict, AES_KEK),
    ]
    for what, store, kek in stores:
        t = best(partial(store.diversify_gp, "gp-kmc", kdds, "emv", wrap_under=kek), rep)
        row(f"GP emv diversification (3 keys), {n} cards, {what}", t, n, "card")
        t = best(partial(prep_keys, store, kek), rep)
        row(f"prep key work (3 PBOC + 4 SSSE keys + PIN), {n} cards, {what}", t, n, "card")

    # 4. data preparation end to end (ssc2-pboc: 3DES SSSE keys + PBOC), one worker
    batch = Path(tempfile.mkdtemp(prefix="bench-prep-")) / "batch.csv"
    make_batch(batch, n, seed=3)
    for what, store, kek in stores:
        t = best(partial(run_prep, batch, store, kek), 1)
        row(f"data preparation ssc2-pboc, {n} cards, 1 worker, {what}", t, n, "card")

    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} "
          f"python {platform.python_version()} cpus {os.cpu_count()}")  # fmt: skip
    print()
    print("| measurement | cost | throughput |")
    print("|---|---:|---:|")
    for what, cost, thr in rows:
        print(f"| {what} | {cost} | {thr} |")
    strict.close()
    fast.close()


if __name__ == "__main__":
    main()
