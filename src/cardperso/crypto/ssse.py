"""Per-card key diversification for the social-security (SSSE) application.

How this works
--------------
A master key M (issuing-centre level, itself possibly diversified from a ministry root by the
same rule) and an 8-byte factor f per card (derived from the card identification code, the
chip serial or the region code, as the profile says) give the card key (16 bytes):

* ``3DES``: ``K = E(M, f) || E(M, ~f)`` (two TDES-ECB blocks, M a 16-byte key);
* ``SM4``:  ``K = E(M, f || ~f)`` (one SM4 block).

``~f`` is the bitwise complement. :func:`diversify` is batch-first: the factors of all cards go
through ONE ECB call under the master key; the one-card form is the batch with one element.
Multi-level diversification is repeated application (root -> centre -> card).
"""

from __future__ import annotations

from collections.abc import Sequence

from cardperso.crypto import primitives as cp
from cardperso.errors import UsageError

__all__ = ["diversify", "diversify_one"]

_FF8 = b"\xff" * 8


def diversify(master: bytes, algorithm: str, factors: Sequence[bytes]) -> list[bytes]:
    """Per-card 16-byte keys for each 8-byte factor (see the module docstring)."""
    if algorithm not in ("3DES", "SM4"):
        raise UsageError("SSSE diversification is defined for 3DES and SM4")
    if len(master) != 16:
        raise UsageError(f"{algorithm} SSSE master key must be 16 bytes")
    for f in factors:
        if len(f) != 8:
            raise UsageError("SSSE diversification factor must be 8 bytes")
    if not factors:
        return []
    blocks = b"".join(f + cp.xor(f, _FF8) for f in factors)
    out = cp.ecb_encrypt(algorithm, master, blocks)
    return [out[i : i + 16] for i in range(0, len(out), 16)]


def diversify_one(master: bytes, algorithm: str, factor: bytes) -> bytes:
    """One card's key (the batch form with one element)."""
    return diversify(master, algorithm, [factor])[0]
