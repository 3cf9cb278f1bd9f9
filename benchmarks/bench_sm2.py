"""SM2 key generation, signing and verification per second: the candidates of issue 17.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_sm2.py                   # cardperso + OpenSSL reference
    .venv/bin/pip install --target /tmp/benchdeps gmssl         # once, to measure gmssl too
    PYTHONPATH=/tmp/benchdeps .venv/bin/python benchmarks/bench_sm2.py

Candidates (one thread each, the recommended curve, default user ID, 32-byte messages):

* ``cardperso`` - :mod:`cardperso.crypto.sm2`, pure Python ints, Jacobian coordinates, a
  fixed-base window table for ``k*G`` and a width-5 NAF for ``t*P``. Keygen = ``d*G``; sign
  includes Z and SM3; verify parses nothing (``r || s`` given).
* ``gmssl`` (PyPI ``gmssl``, pure Python) - ``CryptSM2.sign_with_sm3`` / ``verify_with_sm3``;
  its keygen is ``_kg(d, G)``, the public-key computation (it has no key generator). Each of
  its signatures is also checked with ours (and ours with it): the figures compare equals.
* ``openssl speed`` - OpenSSL 3's C implementation as the ceiling. It is **not** a candidate
  for the library: ``cryptography`` has no SM2 signature, pyOpenSSL cannot set the SM2 user ID
  (and removed ``crypto.sign`` in 24.3.0), ctypes into libcrypto is not a maintained binding.
  Printed for scale only.

Prints operations per second (best of ``--rounds`` rounds of ``--count`` operations), and the
cardholder certificates :mod:`cardperso.pki` issues per second (DER built with asn1crypto, one
SM2 signature each).
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import benchenv  # noqa: E402

from cardperso.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey  # noqa: E402


def rate(fn: Callable[[int], object], count: int, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(count):
            fn(i)
        best = max(best, count / (time.perf_counter() - t0))
    return best


def ours(count: int, rounds: int) -> tuple[float, float, float]:
    key = Sm2PrivateKey.generate()  # builds the fixed-base table once (timed below, apart)
    msgs = [secrets.token_bytes(32) for _ in range(count)]
    sigs = [key.sign(m) for m in msgs]
    pub = key.public_key
    keygen = rate(lambda i: Sm2PrivateKey.generate(), count, rounds)
    sign = rate(lambda i: key.sign(msgs[i]), count, rounds)
    verify = rate(lambda i: pub.verify(sigs[i], msgs[i]), count, rounds)
    return keygen, sign, verify


def gmssl_rates(count: int, rounds: int) -> tuple[float, float, float] | None:
    try:
        from gmssl import func, sm2  # type: ignore[import-untyped]
    except ImportError:
        print("gmssl: not importable (pip install --target DIR gmssl; PYTHONPATH=DIR)")
        return None
    key = Sm2PrivateKey.generate()
    priv_hex = key.to_bytes().hex()
    pub_hex = key.public_key.to_bytes()[1:].hex()
    crypt = sm2.CryptSM2(private_key=priv_hex, public_key=pub_hex, mode=1)
    msgs = [secrets.token_bytes(32) for _ in range(count)]
    sigs = [crypt.sign_with_sm3(m, func.random_hex(crypt.para_len)) for m in msgs]
    # the two implementations agree: gmssl's signatures verify with ours, ours with gmssl
    for m, s in zip(msgs[:20], sigs[:20]):
        key.public_key.verify(bytes.fromhex(s), m)
        assert crypt.verify_with_sm3(key.sign(m).hex(), m)
    g = sm2.default_ecc_table["g"]
    n = int(sm2.default_ecc_table["n"], 16)
    keygen = rate(lambda i: crypt._kg(secrets.randbelow(n - 2) + 1, g), count, rounds)
    sign = rate(
        lambda i: crypt.sign_with_sm3(msgs[i], func.random_hex(crypt.para_len)), count, rounds
    )
    verify = rate(lambda i: crypt.verify_with_sm3(sigs[i], msgs[i]), count, rounds)
    return keygen, sign, verify


def issuance(count: int, rounds: int) -> float:
    """Cardholder certificates per second (build the TBS, sign, wrap) under one issuing CA."""
    import datetime as dt

    from cardperso.layouts import x509
    from cardperso.pki import Holder, Issuer, ca_certificate, cardholder_certificate

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    key = Sm2PrivateKey.generate()
    ca = Issuer(
        key, ca_certificate(key, x509.Name((("CN", "CA"),)), serial=1, not_before=now, days=9)
    )
    pubs = [Sm2PrivateKey.generate().public_key.to_bytes() for _ in range(count)]
    holder = Holder("测试", "110101199003070017")
    return rate(
        lambda i: cardholder_certificate(ca, holder, pubs[i], serial=10 + i, not_before=now),
        count,
        rounds,
    )


def openssl_speed(seconds: int) -> str:
    done = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "sm2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    for line in done.stdout.splitlines():
        if re.search(r"\bSM2\b", line) and re.search(r"\d+\.\d", line):
            return line.strip()
    return f"(openssl speed sm2 printed no figure: {done.stderr.strip()[:80]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gmssl-count", type=int, default=60)
    args = parser.parse_args()
    run = benchenv.start("bench_sm2")
    t0 = time.perf_counter()
    Sm2PrivateKey.generate()
    print(f"cardperso: first key (builds the fixed-base table): {time.perf_counter() - t0:.3f} s")
    assert isinstance(Sm2PrivateKey.generate().public_key, Sm2PublicKey)
    print(f"{'candidate':<12} {'keygen/s':>10} {'sign/s':>10} {'verify/s':>10}")
    k, s, v = ours(args.count, args.rounds)
    print(f"{'cardperso':<12} {k:>10.0f} {s:>10.0f} {v:>10.0f}")
    figures = gmssl_rates(args.gmssl_count, args.rounds)
    if figures is not None:
        k, s, v = figures
        print(f"{'gmssl':<12} {k:>10.0f} {s:>10.0f} {v:>10.0f}")
    print(f"cardperso: cardholder certificates issued per second: {issuance(100, args.rounds):.0f}")
    print("openssl speed sm2 (C, reference; sign/s verify/s):", openssl_speed(3))
    run.end()


if __name__ == "__main__":
    main()
