"""Raw RSA for EMV/PBOC offline data authentication: the narrow door to the RSA primitives.

How this works
--------------
* EMV Book 2 and JR/T 0025.7 sign with *raw* RSA: the signer builds a block ``6A .. hash BC``
  as long as the modulus and applies the private exponent, with no PKCS #1 padding. The block
  formats are data in :mod:`cardperso.layouts.emv_cert`; this module only does the arithmetic.
* :class:`RsaKey` holds the modulus, the public exponent and the CRT parts (p, q, dp, dq, qinv
  = q^-1 mod p, the form a card's private-key DGIs 8201-8205 and PKCS #11 carry). It never
  shows a private part in ``repr``, ``str`` or an exception.
* Key generation goes through ``cryptography`` (OpenSSL's generator). ``cryptography`` has no
  raw private operation, so :func:`rsa_sign_raw` does the CRT itself (the two halves by GMP's
  constant-time ``powmod_sec`` through gmpy2), with
  multiplicative blinding (the exponentiation sees ``block * r^e``, not the block) and a check
  of the result against the public key before it is returned (a faulty CRT half must never
  leave this module: it would give away a factor of the modulus).
* :func:`rsa_recover` is the public operation a terminal applies to a certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import gmpy2  # type: ignore[import-untyped]  # no stubs; only ints pass in and out
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa

from cardperso.errors import UsageError

#: The public exponents EMV Book 2 allows (PBOC uses 3).
EXPONENTS: tuple[int, ...] = (3, 65537)


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _bytes(n: int, length: int) -> bytes:
    return n.to_bytes(length, "big")


@dataclass(frozen=True, repr=False)
class RsaKey:
    """An RSA private key in CRT form; ``repr``/``str`` show only its size and exponent."""

    modulus: bytes
    exponent: int
    p: bytes = field(repr=False)
    q: bytes = field(repr=False)
    dp: bytes = field(repr=False)
    dq: bytes = field(repr=False)
    qinv: bytes = field(repr=False)

    @classmethod
    def from_crt(
        cls,
        modulus: bytes,
        exponent: int,
        p: bytes,
        q: bytes,
        dp: bytes,
        dq: bytes,
        qinv: bytes,
    ) -> RsaKey:
        """Check the parts belong together (n = pq, e*dp = 1 mod p-1, q*qinv = 1 mod p...)
        and pad each CRT part to ``len(modulus) // 2`` bytes; raise :class:`UsageError`
        naming the part that does not fit (never its value)."""
        if not modulus or modulus[0] == 0:
            raise UsageError("RSA modulus: empty or has a leading zero byte")
        half = len(modulus) // 2
        n, ip, iq = _int(modulus), _int(p), _int(q)
        parts = {"p": p, "q": q, "dp": dp, "dq": dq, "qinv": qinv}
        for name, value in parts.items():
            if len(value.lstrip(b"\x00")) > half:
                raise UsageError(f"RSA key part {name}: longer than half the modulus")
        if exponent < 3 or exponent % 2 == 0:
            raise UsageError("RSA public exponent: must be odd and at least 3")
        if ip * iq != n:
            raise UsageError("RSA key parts: p * q is not the modulus")
        if (exponent * _int(dp)) % (ip - 1) != 1 or (exponent * _int(dq)) % (iq - 1) != 1:
            raise UsageError("RSA key parts: dp or dq does not invert the exponent")
        if (_int(qinv) * iq) % ip != 1:
            raise UsageError("RSA key parts: qinv is not q^-1 mod p")
        padded = {k: _bytes(_int(v), half) for k, v in parts.items()}
        return cls(bytes(modulus), exponent, **padded)

    @property
    def bits(self) -> int:
        return _int(self.modulus).bit_length()

    def __repr__(self) -> str:
        return f"<RsaKey {self.bits} bits e={self.exponent}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RsaKey):
            return NotImplemented
        return self.exponent == other.exponent and hmac.compare_digest(
            self.modulus + self.p + self.q, other.modulus + other.p + other.q
        )

    def __hash__(self) -> int:
        return hash((self.modulus, self.exponent))


def rsa_generate(bits: int, exponent: int = 3) -> RsaKey:
    """A fresh key of ``bits`` (a multiple of 8, 1024..4096) with OpenSSL's generator."""
    if bits % 8 or not 1024 <= bits <= 4096:
        raise UsageError("RSA key size: a multiple of 8 bits from 1024 to 4096")
    if exponent not in EXPONENTS:
        raise UsageError(f"RSA public exponent: one of {EXPONENTS}")
    key = _rsa.generate_private_key(public_exponent=exponent, key_size=bits)
    nums = key.private_numbers()
    length = bits // 8
    half = length // 2
    return RsaKey(
        _bytes(nums.public_numbers.n, length),
        exponent,
        _bytes(nums.p, half),
        _bytes(nums.q, half),
        _bytes(nums.dmp1, half),
        _bytes(nums.dmq1, half),
        _bytes(nums.iqmp, half),
    )


def _block_int(modulus: bytes, block: bytes, what: str) -> tuple[int, int]:
    if len(block) != len(modulus):
        raise UsageError(f"RSA {what}: {len(block)} bytes, the modulus has {len(modulus)}")
    n, m = _int(modulus), _int(block)
    if m >= n:
        raise UsageError(f"RSA {what}: not smaller than the modulus")
    return n, m


def rsa_sign_raw(key: RsaKey, block: bytes) -> bytes:
    """The raw private operation ``block^d mod n`` (CRT, blinded, checked); ``block`` is as
    long as the modulus and smaller than it (EMV blocks start with 6A, so they are)."""
    n, m = _block_int(key.modulus, block, "block to sign")
    p, q = _int(key.p), _int(key.q)
    while True:
        r = secrets.randbelow(n - 2) + 2
        try:
            r_inv = int(gmpy2.invert(r, n))
        except ZeroDivisionError:  # pragma: no cover - r shares a factor with n: negligible
            continue
        break
    blinded = (m * pow(r, key.exponent, n)) % n
    # GMP's constant-time modular exponentiation: ten times Python's pow at 704 bits (the
    # issuer signs one ICC certificate per card at prep; H13b measured it, benchmarks/README.md)
    m1 = int(gmpy2.powmod_sec(blinded, _int(key.dp), p))
    m2 = int(gmpy2.powmod_sec(blinded, _int(key.dq), q))
    h = (_int(key.qinv) * (m1 - m2)) % p
    s = ((m2 + h * q) * r_inv) % n
    if pow(s, key.exponent, n) != m:
        raise UsageError("RSA private operation: the result does not verify (key parts faulty)")
    return _bytes(s, len(key.modulus))


def rsa_recover(modulus: bytes, exponent: int, signature: bytes) -> bytes:
    """The raw public operation ``signature^e mod n``, as long as the modulus."""
    n, s = _block_int(modulus, signature, "signature")
    return _bytes(pow(s, exponent, n), len(modulus))


def sha1(data: bytes) -> bytes:
    """SHA-1, the hash of EMV Book 2 certificates and signed data (hash algorithm 01)."""
    return hashlib.sha1(data).digest()  # noqa: S324 - EMV's mandated hash, not a security choice
