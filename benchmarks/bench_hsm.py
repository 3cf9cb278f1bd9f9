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
   PBOC master keys, four SSSE 3DES keys, one padded PIN block wrap) in each mode.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pkcs11 import Mechanism  # noqa: E402

from cardperso.keystore.pkcs11 import Pkcs11KeyStore  # noqa: E402
from cardperso.keystore.software import SoftwareKeyStore  # noqa: E402
from fixtures_hsm import SOFTHSM_MODULE, init_token  # noqa: E402
from keystore_contract import contract_keys  # noqa: E402

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
        t = best(lambda obj=obj, one=one, mech=mech: [obj.encrypt(one, mechanism=mech)
                                                      for _ in range(2000)], rep)  # fmt: skip
        row(f"{alg} C_Encrypt, one call per block ({blocks} calls)", t, blocks, "block")
        t = best(lambda obj=obj, many=many, mech=mech: obj.encrypt(many, mechanism=mech), rep)
        row(f"{alg} C_Encrypt, one call over {blocks} blocks", t, blocks, "block")

    # 2. EMV option A per-card keys
    cards = [(f"621700{i:010d}", f"{i % 100:02d}") for i in range(n)]
    imk = "pboc-imk-ac"
    for what, store, kek in (
        ("software store", soft, DES_KEK),
        ("PKCS#11 fast, 3DES KEK", fast, DES_KEK),
        ("PKCS#11 fast, AES KEK", fast, AES_KEK),
        ("PKCS#11 strict, AES KEK", strict, AES_KEK),
    ):
        t = best(lambda store=store, kek=kek: store.derive_emv_a(imk, cards, wrap_under=kek), rep)
        row(f"EMV option A, {n} cards, {what}", t, n, "card")

    # 3. GP diversification and the data-preparation key work per card
    kdds = [bytes(2) + i.to_bytes(8, "big") for i in range(n)]
    factors = [i.to_bytes(8, "big") for i in range(n)]
    pins = b"".join(bytes.fromhex("241234FFFFFFFFFF") for _ in range(n))

    def prep_keys(store: object, kek: str) -> None:
        assert isinstance(store, (SoftwareKeyStore, Pkcs11KeyStore))
        for master in ("pboc-imk-ac", "pboc-imk-smi", "pboc-imk-smc"):
            store.derive_emv_a(master, cards, wrap_under=kek)
        for master in ("ssse-mk-3des", "ssse-uk-ef05-3des", "ssse-uk-ef06-3des", "ssse-irk-3des"):
            store.derive_ssse(master, factors, wrap_under=kek)
        store.wrap(kek, pins)

    for what, store, kek in (
        ("software store", soft, DES_KEK),
        ("PKCS#11 fast", fast, AES_KEK),
        ("PKCS#11 strict", strict, AES_KEK),
    ):
        t = best(lambda s=store, k=kek: s.diversify_gp("gp-kmc", kdds, "emv", wrap_under=k), rep)
        row(f"GP emv diversification (3 keys), {n} cards, {what}", t, n, "card")
        t = best(lambda s=store, k=kek: prep_keys(s, k), rep)
        row(f"prep key work (3 PBOC + 4 SSSE keys + PIN), {n} cards, {what}", t, n, "card")

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
