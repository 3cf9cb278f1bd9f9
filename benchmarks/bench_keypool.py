"""The ICC key pool and the per-card ODA data (issue 13 item 2).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_keypool.py                     # both parts
    .venv/bin/python benchmarks/bench_keypool.py --part gen --bits 1024,1408 --keys 600,200
    .venv/bin/python benchmarks/bench_keypool.py --part oda --issuer-bits 1408,1984

``gen``: keys per second of ``cardperso.keystore.poolgen.fill`` (what ``cardperso keys pool
generate`` runs: spawned workers, OpenSSL's generator through ``cryptography``, each batch's CRT
parts encrypted under the KEK in one call, segments committed atomically), against bare OpenSSL
on the same cores: ``--workers`` shell loops, in parallel, each running ``openssl genpkey
-algorithm RSA -pkeyopt rsa_keygen_bits:B -pkeyopt rsa_keygen_pubexp:3`` once per key (the
process start of each ``openssl`` is measured apart with ``openssl version`` and printed).
Both make the same number of keys, in ``--gen-rounds`` interleaved rounds (ours, OpenSSL, ours...)
so that both see the same machine load; the wall time includes starting the workers each round.

``oda``: per card, what prep adds for a DDA card (and SDA+DDA): the static data from the card's
record DGIs, the ICC certificate signed by the issuer key (the raw RSA private operation of
:func:`cardperso.crypto.rsa.rsa_sign_raw`, GMP's ``powmod_sec``), the record and key DGIs, on
chunks of ``--cards`` cards from a pool reservation (one read per chunk), in CPU time of this
process (``time.process_time``: what sets cards per second per core, and less disturbed by
other jobs on the machine than wall time). The raw private
operation alone is also timed, in interleaved rounds, three ways: ``rsa_sign_raw`` (GMP's
``powmod_sec``), the system OpenSSL's ``EVP_PKEY_decrypt`` with ``RSA_NO_PADDING`` through ctypes
(``cryptography`` offers no raw RSA operation), and Python's built-in ``pow`` for the same CRT
(what rsa_sign_raw used before).

``prep``: ``cardperso prep`` of the reference product (its ODA: 9F46 and 93 per card, signed by
a fresh store's 1408-bit issuer key) with a full pool, ``--records`` records, per worker count.

``hsm``: the issuer key in a SoftHSM2 token (``C_Sign``, ``CKM_RSA_X_509``, one call per card
through the PKCS#11 store's ``rsa_signer``) and a DDA chunk signed with it, the pool's keys
encrypted under the token's KEK (the token is set up as ``bench_hsm.py`` does).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import benchenv

from cardperso.codec.dgi import encode_dgi
from cardperso.codec.tlv import encode as tlv
from cardperso.crypto.rsa import RsaKey, rsa_generate, rsa_sign_raw
from cardperso.keystore.pool import IccKeyPool
from cardperso.keystore.poolgen import fill, open_or_create
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.oda import OdaSetup, icc_dgis, static_data_of


def _openssl_loop(bits: int, count: int, workers: int, command: str) -> float:
    """Wall seconds for ``workers`` shell loops in parallel running ``command`` ``count``
    times in all."""
    per = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {n} ]; do {command}; i=$((i+1)); done"])
        for n in per
    ]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("openssl failed")
    return time.perf_counter() - started


def part_gen(bits_list: list[int], counts: list[int], workers: int, rounds: int, tmp: Path) -> None:
    store_path = tmp / "keys.json"
    SoftwareKeyStore.generate(test_keys=True).save(store_path)
    opener = functools.partial(SoftwareKeyStore.load, store_path)
    genpkey = (
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} "
        "-pkeyopt rsa_keygen_pubexp:3 -out /dev/null 2>/dev/null"
    )
    start_cost = _openssl_loop(0, 200, 1, "openssl version >/dev/null") / 200
    print(f"\nopenssl process start (openssl version, 200 runs): {start_cost * 1000:.2f} ms each")
    print(
        f"\n{'bits':>5} {'keys':>5}  {'pool fill keys/s':>17}  {'openssl genpkey keys/s':>23}  ratio"
    )
    for bits, count in zip(bits_list, counts):
        with SoftwareKeyStore.load(store_path) as store:
            pool = open_or_create(
                tmp / f"rsa{bits}", store, bits=bits, exponent=3, kek="transport-kek"
            )
        # interleaved rounds (ours, OpenSSL, ours, ...): both see the same machine load
        ours_s = theirs_s = 0.0
        part = count // rounds
        for r in range(rounds):
            t0 = time.perf_counter()
            made = fill(pool, opener, count=part * (r + 1), workers=workers).generated
            ours_s += time.perf_counter() - t0
            assert made == part
            theirs_s += _openssl_loop(bits, part, workers, genpkey.format(bits=bits))
        ours, theirs = part * rounds / ours_s, part * rounds / theirs_s
        count = part * rounds
        print(
            f"{bits:>5} {count:>5}  {ours:>17.1f}  {theirs:>23.1f}  x{ours / theirs:.2f}",
            flush=True,
        )
    print(f"(both with {workers} worker processes on {os.cpu_count()} CPUs)")


def _python_pow_sign(key: RsaKey, block: bytes) -> bytes:
    """The same CRT with Python's built-in pow (no blinding, no check): the baseline."""
    p, q = int.from_bytes(key.p, "big"), int.from_bytes(key.q, "big")
    m = int.from_bytes(block, "big")
    m1 = pow(m, int.from_bytes(key.dp, "big"), p)
    m2 = pow(m, int.from_bytes(key.dq, "big"), q)
    h = (int.from_bytes(key.qinv, "big") * (m1 - m2)) % p
    return (m2 + h * q).to_bytes(len(key.modulus), "big")


def _openssl_signer(key: RsaKey) -> Callable[[bytes], bytes]:
    """The raw private operation of the system's libcrypto (``EVP_PKEY_decrypt`` with
    ``RSA_NO_PADDING``, OpenSSL's own blinding and CRT check) through ctypes: the comparison
    for the choice of GMP in rsa_sign_raw (``cryptography`` has no raw RSA operation)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import rsa

    ints = [int.from_bytes(x, "big") for x in (key.modulus, key.p, key.q, key.dp, key.dq, key.qinv)]
    n, p, q, dp, dq, qinv = ints
    d = rsa.rsa_recover_private_exponent(key.exponent, p, q)
    pub = rsa.RSAPublicNumbers(key.exponent, n)
    der = (
        rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, pub)
        .private_key()
        .private_bytes(ser.Encoding.DER, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())
    )
    lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    vp = ctypes.c_void_p
    lib.d2i_AutoPrivateKey.restype = vp
    lib.d2i_AutoPrivateKey.argtypes = [vp, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
    lib.EVP_PKEY_CTX_new.restype = vp
    lib.EVP_PKEY_CTX_new.argtypes = [vp, vp]
    lib.EVP_PKEY_decrypt_init.argtypes = [vp]
    lib.EVP_PKEY_CTX_set_rsa_padding.argtypes = [vp, ctypes.c_int]
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.EVP_PKEY_decrypt.argtypes = [vp, ctypes.c_char_p, size_p, ctypes.c_char_p, ctypes.c_size_t]
    src = ctypes.c_char_p(der)
    pkey = lib.d2i_AutoPrivateKey(None, ctypes.byref(src), len(der))
    ctx = lib.EVP_PKEY_CTX_new(pkey, None)
    if not (lib.EVP_PKEY_decrypt_init(ctx) == 1 and lib.EVP_PKEY_CTX_set_rsa_padding(ctx, 3) == 1):
        raise SystemExit("libcrypto refused the raw RSA set-up")
    length = len(key.modulus)
    out = ctypes.create_string_buffer(length)
    got = ctypes.c_size_t(length)

    def sign(block: bytes) -> bytes:
        got.value = length
        if lib.EVP_PKEY_decrypt(ctx, out, ctypes.byref(got), block, length) != 1:
            raise SystemExit("libcrypto raw RSA failed")
        return out.raw[: got.value]

    return sign


def _card_stream(i: int) -> tuple[str, bytes]:
    """A card's three ODA records as a DGI stream (track 2, name and IDs, PAN and dates)."""
    pan = f"623100{i:09d}7"
    rec = [
        tlv(0x57, bytes.fromhex(pan + "D281220100000000000F")),
        tlv(0x5F20, b"ZHANG/SAN") + tlv(0x9F08, b"\x00\x30") + tlv(0x9F61, b"1" * 18),
        tlv(0x5A, bytes.fromhex(pan)) + tlv(0x5F24, bytes.fromhex("281231")),
    ]
    return pan, b"".join(encode_dgi(d, tlv(0x70, r)) for d, r in zip((0x0101, 0x0201, 0x0301), rec))


def part_oda(issuer_bits: list[int], cards: int, rounds: int, tmp: Path) -> None:
    store_path = tmp / "oda-keys.json"
    store = SoftwareKeyStore.generate(test_keys=True)
    store.save(store_path)
    pool = open_or_create(tmp / "oda-pool", store, bits=1024, exponent=3, kek="transport-kek")
    opener = functools.partial(SoftwareKeyStore.load, store_path)
    afl = bytes.fromhex("080101011001020118010201")
    pans, streams = zip(*(_card_stream(i) for i in range(cards)))
    expiries = ["2812"] * cards
    print(
        f"\nper card (CPU time), chunks of {cards:,} cards, 1024-bit ICC keys from the pool (pool KEK = the "
        f"{store.info('transport-kek').algorithm} transport KEK: no re-encryption), best of {rounds}:"
    )
    fill(pool, opener, count=cards, workers=2)
    # one chunk's reservation, read again in every round (timing only: a run uses a key once)
    res = IccKeyPool(pool.directory).reserve(cards, label="bench")
    for bits in issuer_bits:
        issuer = rsa_generate(bits, 3)
        block = b"\x6a" + secrets.token_bytes(bits // 8 - 2) + b"\xbc"
        ossl = _openssl_signer(issuer)
        assert ossl(block) == rsa_sign_raw(issuer, block)
        times = {"gmp": 0.0, "openssl": 0.0, "pow": 0.0}
        for _ in range(5):  # interleaved rounds: the three see the same machine load
            for name, fn, n in (
                ("gmp", functools.partial(rsa_sign_raw, issuer), 40),
                ("openssl", ossl, 40),
                ("pow", functools.partial(_python_pow_sign, issuer), 4),
            ):
                t0 = time.process_time()
                for _ in range(n):
                    fn(block)
                times[name] += (time.process_time() - t0) / n / 5
        print(
            f"  issuer {bits} bits, raw private op: rsa_sign_raw (GMP powmod_sec, blinded, checked) "
            f"{times['gmp'] * 1e6:,.0f} us; libcrypto EVP_PKEY_decrypt no padding "
            f"{times['openssl'] * 1e6:,.0f} us; Python pow CRT {times['pow'] * 1e6:,.0f} us"
        )
        for sda in (False, True):
            setup = OdaSetup.make(
                issuer_sign=functools.partial(rsa_sign_raw, issuer), issuer_length=bits // 8,
                afl=afl, aip=b"\x7c\x00", cert_dgi=0x0202, ssad_dgi=0x0302 if sda else None,
                transport_kek="transport-kek",
            )  # fmt: skip
            best = [float("inf")] * 3
            for _ in range(rounds):
                t0 = time.process_time()
                keys = res.read(0, cards)
                t1 = time.process_time()
                static = [static_data_of(setup, s) for s in streams]
                t2 = time.process_time()
                icc_dgis(setup, keys, static, list(pans), expiries, store)
                t3 = time.process_time()
                best = [min(a, b) for a, b in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
            total = sum(best) / cards
            print(
                f"    {'SDA+DDA (9F46 and 93)' if sda else 'DDA (9F46)':<22} pool read "
                f"{best[0] / cards * 1e6:6.1f} us, static data {best[1] / cards * 1e6:5.1f} us, "
                f"icc_dgis {best[2] / cards * 1e6:7.1f} us: {total * 1e6:7.1f} us/card = "
                f"{1 / total:,.0f} cards/s per core",
                flush=True,
            )


def part_hsm(issuer_bits: list[int], cards: int, tmp: Path) -> None:
    """The issuer's signature in a SoftHSM2 token (``C_Sign`` with ``CKM_RSA_X_509`` per card,
    through the PKCS#11 store's ``rsa_signer``), and a DDA chunk signed with it. SoftHSM2 runs
    in this process, so CPU time includes the token's work."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from bench_hsm import setup_token

    from cardperso.keystore.pkcs11 import Pkcs11KeyStore
    from fixtures_hsm import SOFTHSM_MODULE  # type: ignore[import-not-found,unused-ignore]

    label, pin_source = setup_token()
    token = Pkcs11KeyStore(SOFTHSM_MODULE, label, pin_source)
    token.generate_key("transport-kek", "AES", 16)
    pool = open_or_create(tmp / "hsm-pool", token, bits=1024, exponent=3, kek="transport-kek")
    opener = functools.partial(Pkcs11KeyStore, SOFTHSM_MODULE, label, pin_source)
    fill(pool, opener, count=cards, workers=2)
    res = pool.reserve(cards, label="bench")
    pans, streams = zip(*(_card_stream(i) for i in range(cards)))
    print(f"\nSoftHSM2 token ({SOFTHSM_MODULE}), CPU time, DDA chunks of {cards:,} cards:")
    for bits in issuer_bits:
        token.generate_rsa_key(f"oda-issuer-{bits}", bits, 3)
        sign = token.rsa_signer(f"oda-issuer-{bits}")
        block = b"\x6a" + secrets.token_bytes(bits // 8 - 2) + b"\xbc"
        t0 = time.process_time()
        for _ in range(200):
            sign(block)
        raw = (time.process_time() - t0) / 200
        setup = OdaSetup.make(
            issuer_sign=sign, issuer_length=bits // 8, afl=bytes.fromhex("080101011001020118010201"),
            aip=b"\x7c\x00", cert_dgi=0x0202, transport_kek="transport-kek",
        )  # fmt: skip
        t0 = time.process_time()
        keys = res.read(0, cards)
        static = [static_data_of(setup, s) for s in streams]
        icc_dgis(setup, keys, static, list(pans), ["2812"] * cards, token)
        per = (time.process_time() - t0) / cards
        print(
            f"  issuer {bits} bits: C_Sign CKM_RSA_X_509 {raw * 1e6:,.0f} us; DDA card "
            f"{per * 1e6:,.0f} us = {1 / per:,.0f} cards/s per core",
            flush=True,
        )
    token.close()


def part_prep(records: int, workers_list: list[int], tmp: Path) -> None:
    """``cardperso prep`` of the reference product (ssc3-pboc: SDA + DDA + CDA, 1408-bit issuer
    key of a fresh key store) with its ICC keys from a full pool, end to end in child processes
    (wall time; the pool was filled beforehand and is not timed)."""
    cli = [sys.executable, "-m", "cardperso"]
    batch, keys = tmp / "prep-batch.csv", tmp / "prep-keys.json"
    subprocess.run([*cli, "examples", "make-batch", "--count", str(records), "--out", str(batch)], check=True, capture_output=True)  # fmt: skip
    subprocess.run([*cli, "keys", "generate", "--out", str(keys)], check=True, capture_output=True)
    runs = len(workers_list)
    fill_args = ["keys", "pool", "generate", str(keys), "--bits", "1024"]
    subprocess.run([*cli, *fill_args, "--count", str((records + 2) * runs)], check=True, capture_output=True)  # fmt: skip
    print(
        f"\nprep of {records:,} records, profile ssc3-pboc (ODA: 9F46 and 93 per card), pool full:"
    )
    for workers in workers_list:
        out, rejects = tmp / f"prep-{workers}.perso", tmp / f"prep-{workers}.rejects.csv"
        t0 = time.perf_counter()
        done = subprocess.run(
            [*cli, "prep", str(batch), "--profile", "ssc3-pboc", "--keys", str(keys), "--out",
             str(out), "--rejects", str(rejects), "--workers", str(workers)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"prep failed: {done.stderr[-500:]}")
        own = re.search(r"\(([0-9.]+) s, ([0-9,]+) records/s\)", done.stdout + done.stderr)
        rate = own.group(2) if own else "?"
        print(
            f"  {workers} worker(s): {rate} records/s as prep reports it ({own.group(1) if own else '?'} s); "
            f"{records / seconds:,.0f} cards/s over the whole command ({seconds:.1f} s, Python "
            "start and imports included)",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=("gen", "oda", "hsm", "prep", "all"), default="all")
    ap.add_argument("--records", type=int, default=5000, help="records for --part prep")
    ap.add_argument("--prep-workers", default="1,2", help="worker counts for --part prep")
    ap.add_argument("--bits", default="1024,1408", help="ICC key sizes for --part gen")
    ap.add_argument("--keys", default="600,200", help="keys generated at each size")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--gen-rounds", type=int, default=3, help="interleaved rounds of --part gen")
    ap.add_argument("--issuer-bits", default="1408,1984", help="issuer key sizes for --part oda")
    ap.add_argument("--cards", type=int, default=1000, help="cards per chunk for --part oda")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    run = benchenv.start("bench_keypool")
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("gen", "all"):
            bits = [int(b) for b in args.bits.split(",")]
            counts = [int(c) for c in args.keys.split(",")]
            if len(bits) != len(counts):
                raise SystemExit("--bits and --keys need as many values")
            part_gen(bits, counts, args.workers, args.gen_rounds, Path(tmp))
        if args.part in ("oda", "all"):
            part_oda(
                [int(b) for b in args.issuer_bits.split(",")], args.cards, args.rounds, Path(tmp)
            )
        if args.part in ("prep", "all"):
            part_prep(args.records, [int(w) for w in args.prep_workers.split(",")], Path(tmp))
        if args.part in ("hsm", "all"):
            part_hsm([int(b) for b in args.issuer_bits.split(",")], args.cards, Path(tmp))
    run.end()


if __name__ == "__main__":
    sys.exit(main())
