"""Check values of many double-length DES keys at once (the DGI 9000 check values of a chunk).

Why this exists
---------------
DGI 9000 carries the check value ``TDES(K, 00×8)[:3]`` of each card master key (three per
card). Every key is different, so the ``cryptography`` package needs one cipher context per key,
most of whose cost is OpenSSL context set-up. :func:`kcv_3des_blob` computes the check values of
a whole chunk in one pass of the table-driven numpy DES of :mod:`cardperso.crypto.desvec`, whose
operations each serve every key of the chunk.

It replaced a bitsliced implementation over Python integers (E. Biham, FSE 1997; its last
version is commit 7929466); ``benchmarks/bench_kcv.py`` still times that one, from git, for comparison.
Tested against the NIST SP 800-20 known answers and against :func:`cardperso.crypto.kcv`
(``cryptography``) on random keys: tests/test_prep_kcv.py, tests/test_crypto_desvec.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from cardperso.crypto.desvec import tdes_kcv_blob
from cardperso.crypto.primitives import kcv

__all__ = ["kcv_3des_blob", "kcvs"]


def kcv_3des_blob(blob: bytes, length: int = 3) -> bytes:
    """Check values of the 16-byte keys laid end to end in *blob*, end to end (*length* bytes
    each, 1 to 8)."""
    if len(blob) % 16:
        raise ValueError("kcv_3des_blob takes whole 16-byte keys")
    if not blob:
        return b""
    if len(blob) // 16 < BATCH_FROM:  # a card's own keys: the numpy pass's set-up costs more
        return b"".join(kcv("3DES", blob[i : i + 16], length) for i in range(0, len(blob), 16))
    return tdes_kcv_blob(blob, length)


#: the smallest number of keys whose check values :func:`kcvs` computes in one numpy pass
BATCH_FROM = 64


def kcvs(algorithm: str, keys: Sequence[bytes], length: int = 3) -> list[bytes]:
    """Check values of many keys of ``algorithm`` (:func:`cardperso.crypto.kcv` conventions):
    double-length 3DES keys in one :func:`kcv_3des_blob` pass, any others one by one. Fewer
    than ``BATCH_FROM`` keys (a card's own keys on the line) go one by one inside
    :func:`kcv_3des_blob`: the numpy pass's set-up (~0.6 ms) costs more than a few cipher
    objects (~12 us each)."""
    if algorithm == "3DES" and all(len(k) == 16 for k in keys):
        blob = kcv_3des_blob(b"".join(keys), length)
        return [blob[i : i + length] for i in range(0, len(blob), length)]
    return [kcv(algorithm, k, length) for k in keys]
