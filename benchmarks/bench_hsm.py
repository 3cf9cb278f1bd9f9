"""PKCS#11 (SoftHSM2) throughput: per-call vs batched ECB, strict vs fast derivation.

Run: ``.venv/bin/python benchmarks/bench_hsm.py [--cards 2000] [--repeat 3]``

The script sets up its own SoftHSM2 token in a temporary directory (PINs typed at
softhsm2-util's prompt through a pty, as the test fixture does), imports the published sample
keys and prints a Markdown table. Figures are the best of ``--repeat`` runs; they are recorded
in benchmarks/README.md (the HSM rows) with the machine and load they came from.

Like is compared with like: every row names its transport KEK, and each comparison between
stores is made on ONE KEK. SoftHSM2 wraps per-card keys (``C_WrapKey``) under AES keys only, so
strict mode runs on the AES KEK alone; the software store and fast mode run on both the 3DES KEK
(``transport-kek`` of the sample keys) and the AES KEK (``transport-kek-aes``; a new key store's
``transport-kek`` is AES too, issue 14).

Measured:

1. ``C_Encrypt`` DES3-ECB / AES-ECB, one call per block vs one call over all blocks;
2. per-card key derivation (EMV option A, one master) with each store on each KEK;
3. GP diversification (3 keys per card) and the key work of data preparation per card (three
   PBOC master keys, four SSSE 3DES keys without check values, the chunk's PIN blocks in one
   wrap call, padded on the host under an AES KEK) with each store on each KEK;
4. data preparation end to end (``cardperso.prep.pipeline.prepare``, profile ``ssc2-pboc`` with
   its ``transport_kek`` set to the KEK of the row, one worker, one timed run each after an
   untimed warm-up run), and the perso files of the stores on one KEK compared byte for byte
   (SHA-256 of each file printed; the script exits 1 if they differ).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import benchenv  # noqa: E402
from pkcs11 import Mechanism  # noqa: E402

from cardperso.crypto import pad_method2  # noqa: E402
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


def run_prep(batch: Path, store: KeyStore, kek: str, out: Path) -> None:
    profile = dataclasses.replace(load_profile("ssc2-pboc"), transport_kek=kek)
    options = PrepOptions(batch_id="BENCH", created=1_790_000_000, chunk_size=1000)
    summary = prepare(batch, profile, store, lambda: store, out, out.with_suffix(".rej"), options)
    assert summary.prepared == summary.read


def pin_wrap(store: KeyStore, kek: str, pins: bytes, kek_block: int) -> None:
    """Wrap a chunk's 8-byte PIN blocks in ONE call under either KEK: under an AES KEK each
    block is padded on the host first (ISO/IEC 9797-1 method 2, to 16 bytes), which gives the
    bytes of one padded wrap per card (ECB) with one token call instead of one per card."""
    if kek_block == 8:
        store.wrap(kek, pins)
    else:
        padded = b"".join(pad_method2(pins[i : i + 8], kek_block) for i in range(0, len(pins), 8))
        store.wrap(kek, padded)


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
    run = benchenv.start("bench_hsm")
    print(f"SoftHSM2 module {SOFTHSM_MODULE}; {n} cards, best of {rep} (prep: one run each)\n")

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

    # every store on every KEK it can serve: (KEK label, KEK name, KEK block, stores)
    keks: list[tuple[str, str, int, list[tuple[str, KeyStore]]]] = [
        ("3DES KEK", DES_KEK, 8, [("software store", soft), ("PKCS#11 fast", fast)]),
        (
            "AES KEK",
            AES_KEK,
            16,
            [("software store", soft), ("PKCS#11 fast", fast), ("PKCS#11 strict", strict)],
        ),
    ]

    # 2. EMV option A per-card keys
    cards = [(f"621700{i:010d}", f"{i % 100:02d}") for i in range(n)]
    for kek_label, kek, _block, stores in keks:
        for what, store in stores:
            t = best(partial(store.derive_emv_a, "pboc-imk-ac", cards, wrap_under=kek), rep)
            row(f"EMV option A, {n} cards, {kek_label}, {what}", t, n, "card")

    # 3. GP diversification and the data-preparation key work per card
    kdds = [bytes(2) + i.to_bytes(8, "big") for i in range(n)]
    factors = [i.to_bytes(8, "big") for i in range(n)]
    pins = b"".join(bytes.fromhex("241234FFFFFFFFFF") for _ in range(n))

    def prep_keys(store: KeyStore, kek: str, kek_block: int) -> None:
        for master in ("pboc-imk-ac", "pboc-imk-smi", "pboc-imk-smc"):
            store.derive_emv_a(master, cards, wrap_under=kek)
        for master in ("ssse-mk-3des", "ssse-uk-ef05-3des", "ssse-uk-ef06-3des", "ssse-irk-3des"):
            # the SSSE DGIs carry no check values: strict mode then makes 2 calls per key, not 4
            store.derive_ssse(master, factors, wrap_under=kek, check_values=False)
        pin_wrap(store, kek, pins, kek_block)

    for kek_label, kek, block, stores in keks:
        for what, store in stores:
            t = best(partial(store.diversify_gp, "gp-kmc", kdds, "emv", wrap_under=kek), rep)
            row(f"GP emv diversification (3 keys), {n} cards, {kek_label}, {what}", t, n, "card")
        for what, store in stores:
            t = best(partial(prep_keys, store, kek, block), rep)
            row(
                f"prep key work (3 PBOC + 4 SSSE keys + PIN), {n} cards, {kek_label}, {what}",
                t,
                n,
                "card",
            )

    # 4. data preparation end to end (ssc2-pboc: 3DES SSSE keys + PBOC), one worker, and the
    #    files of the stores on one KEK compared byte for byte
    work = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    batch = work / "batch.csv"
    make_batch(batch, n, seed=3)
    same: list[str] = []
    different = False
    for kek_label, kek, _block, stores in keks:
        digests: list[tuple[str, str]] = []
        run_prep(batch, soft, kek, work / "warm-up.perso")  # imports, profile, caches: untimed
        for i, (what, store) in enumerate(stores):
            out = work / f"{kek}-{i}.perso"
            t = best(partial(run_prep, batch, store, kek, out), 1)
            row(
                f"data preparation ssc2-pboc, {n} cards, 1 worker, {kek_label}, {what}",
                t,
                n,
                "card",
            )
            digests.append((what, hashlib.sha256(out.read_bytes()).hexdigest()))
        identical = len({d for _, d in digests}) == 1
        different |= not identical
        same.append(
            f"perso files, {kek_label} ({', '.join(w for w, _ in digests)}): "
            + ("IDENTICAL, " if identical else "DIFFERENT, ")
            + "; ".join(f"{w} sha256 {d[:16]}…" for w, d in digests)
        )
    shutil.rmtree(work)

    print("| measurement | cost | throughput |")
    print("|---|---:|---:|")
    for what, cost, thr in rows:
        print(f"| {what} | {cost} | {thr} |")
    print()
    for line in same:
        print(line)
    strict.close()
    fast.close()
    run.end()
    if different:
        raise SystemExit("the stores' perso files differ on one KEK")


if __name__ == "__main__":
    main()
