"""SM2 (GB/T 32918) signatures and public-key encryption, and SM3 (GB/T 32905).

How this works
--------------
* **SM3** is ``cryptography``'s ``hashes.SM3`` (OpenSSL underneath).
* **SM2** is our own pure-Python code on Python ints, chosen by measurement
  (``benchmarks/bench_sm2.py``): ``cryptography`` has no SM2 signature, the pure-Python
  ``gmssl`` package is 5-18x slower than this module, and ctypes into libcrypto is not a
  maintained binding.
* Points are in Jacobian coordinates ``(X, Y, Z)`` (affine ``x = X/Z^2``, ``y = Y/Z^3``; Z = 0 is
  the point at infinity), so a scalar multiplication makes one field inversion.
* ``k*G`` (key generation, signing, encryption) uses a **fixed-base window table** built once
  per curve: for each 6-bit window ``i`` the 63 multiples ``j * 2^(6i) * G`` in affine form, so a
  scalar multiplication is 43 mixed additions and no doubling.
* ``t*P`` for another point (verification, encryption, decryption) uses a width-5 NAF with
  the odd multiples of ``P`` in affine form.
* Signatures follow GB/T 32918.2: ``e = SM3(Z || M)`` with ``Z = SM3(ENTL || ID || a || b ||
  xG || yG || xA || yA)``, the user ID defaulting to ``1234567812345678`` (GM/T 0009).
  :meth:`Sm2PublicKey.verify` raises :class:`~cardperso.errors.SignatureMismatch`; it never
  returns a bool. Signatures travel as ``r || s`` (64 bytes) or DER (``SEQUENCE {r, s}``, what
  X.509 and OpenSSL use): :func:`signature_to_der` / :func:`signature_from_der`.
* Encryption follows GB/T 32918.4 (2016): ``C = C1 || C3 || C2`` with ``C1 = 04 || x1 || y1``;
  :func:`ciphertext_to_der` gives GM/T 0009's ``SEQUENCE {x, y, C3, C2}`` (what OpenSSL reads).

Side channels: Python integers are not constant-time, so a private-key operation here leaks
timing to a local observer. The test PKI and the key pool run in the data-preparation room, not
on a network service; comparisons of secrets (``R == r``, ``C3``) use ``hmac.compare_digest``.
Private keys never show their value in ``repr``/``str``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.hazmat.primitives import hashes

from cardperso.crypto.sm2der import (
    ciphertext_from_der,
    ciphertext_to_der,
    signature_from_der,
    signature_to_der,
)
from cardperso.errors import DataError, SecurityError, SignatureMismatch, UsageError

__all__ = [
    "DEFAULT_USER_ID",
    "SM2_EXAMPLE_P256",
    "SM2_P256",
    "Sm2Curve",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "Sm2Signer",
    "check_value",
    "ciphertext_from_der",
    "ciphertext_to_der",
    "encrypt_with_nonce",
    "signature_from_der",
    "signature_to_der",
    "sm3",
]

#: GM/T 0009-2012 section 10: the user ID when the parties agree on none.
DEFAULT_USER_ID: Final = b"1234567812345678"

_WINDOW: Final = 6
_TABLE_LOCK: Final = threading.Lock()
_NAF_WIDTH: Final = 5

Jacobian = tuple[int, int, int]
Affine = tuple[int, int]


def sm3(data: bytes) -> bytes:
    """The SM3 digest (GB/T 32905) of ``data``: 32 bytes."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


@dataclass(frozen=True, slots=True, eq=False)
class Sm2Curve:
    """A short-Weierstrass curve over GF(p) with its base point G of prime order n (cofactor 1)."""

    name: str
    p: int
    a: int
    b: int
    n: int
    gx: int
    gy: int
    _table: list[list[Affine]] = field(default_factory=list, repr=False)

    @property
    def size(self) -> int:
        """Bytes in a field element (and in a scalar): 32 for both curves here."""
        return (self.p.bit_length() + 7) // 8

    def on_curve(self, x: int, y: int) -> bool:
        p = self.p
        return 0 <= x < p and 0 <= y < p and (y * y - x * x * x - self.a * x - self.b) % p == 0

    # -- group law in Jacobian coordinates -------------------------------------------------

    def _double(self, pt: Jacobian) -> Jacobian:
        x, y, z = pt
        if z == 0 or y == 0:
            return (1, 1, 0)
        p = self.p
        yy = y * y % p
        s = 4 * x * yy % p
        zz = z * z % p
        # a = -3 (the recommended curve): 3x^2 + a z^4 = 3 (x - z^2)(x + z^2)
        m = 3 * (x - zz) * (x + zz) if self.a == p - 3 else 3 * x * x + self.a * zz * zz
        m %= p
        x3 = (m * m - 2 * s) % p
        y3 = (m * (s - x3) - 8 * yy * yy) % p
        return (x3, y3, 2 * y * z % p)

    def _add_affine(self, pt: Jacobian, q: Affine) -> Jacobian:
        """``pt + q`` where ``q`` is affine (a "mixed" addition)."""
        x1, y1, z1 = pt
        x2, y2 = q
        if z1 == 0:
            return (x2, y2, 1)
        p = self.p
        z1z1 = z1 * z1 % p
        h = (x2 * z1z1 - x1) % p
        r = (y2 * z1 * z1z1 - y1) % p
        if h == 0:
            return self._double(pt) if r == 0 else (1, 1, 0)
        hh = h * h % p
        hhh = h * hh % p
        v = x1 * hh % p
        x3 = (r * r - hhh - 2 * v) % p
        y3 = (r * (v - x3) - y1 * hhh) % p
        return (x3, y3, z1 * h % p)

    def _add(self, a: Jacobian, b: Jacobian) -> Jacobian:
        if a[2] == 0:
            return b
        if b[2] == 0:
            return a
        p = self.p
        x1, y1, z1 = a
        x2, y2, z2 = b
        z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
        u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
        s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
        h, r = (u2 - u1) % p, (s2 - s1) % p
        if h == 0:
            return self._double(a) if r == 0 else (1, 1, 0)
        hh = h * h % p
        hhh = h * hh % p
        v = u1 * hh % p
        x3 = (r * r - hhh - 2 * v) % p
        y3 = (r * (v - x3) - s1 * hhh) % p
        return (x3, y3, z1 * z2 * h % p)

    def _affine(self, pt: Jacobian) -> Affine | None:
        x, y, z = pt
        if z == 0:
            return None
        p = self.p
        zi = pow(z, -1, p)
        zi2 = zi * zi % p
        return (x * zi2 % p, y * zi2 * zi % p)

    def _batch_affine(self, pts: list[Jacobian]) -> list[Affine]:
        """Many points to affine with one inversion (Montgomery's trick); none may be infinity."""
        p = self.p
        prefix = [1]
        for _, _, z in pts:
            prefix.append(prefix[-1] * z % p)
        inv = pow(prefix[-1], -1, p)
        out: list[Affine] = [(0, 0)] * len(pts)
        for i in range(len(pts) - 1, -1, -1):
            x, y, z = pts[i]
            zi = inv * prefix[i] % p
            inv = inv * z % p
            zi2 = zi * zi % p
            out[i] = (x * zi2 % p, y * zi2 * zi % p)
        return out

    # -- scalar multiplication -------------------------------------------------------------

    def _base_table(self) -> list[list[Affine]]:
        if self._table:
            return self._table
        with _TABLE_LOCK:  # built once per curve and process (~30 ms), even with threads
            if self._table:
                return self._table
            rows: list[list[Affine]] = []
            base: Jacobian = (self.gx, self.gy, 1)
            for _ in range((self.n.bit_length() + _WINDOW - 1) // _WINDOW):
                row = [base]
                for _ in range((1 << _WINDOW) - 2):
                    row.append(self._add(row[-1], base))
                rows.append(self._batch_affine(row))
                base = self._add(row[-1], base)  # 2^w * base
            self._table.extend(rows)
        return self._table

    def mul_base(self, k: int) -> Affine:
        """``k * G`` for ``0 < k < n`` (affine)."""
        table = self._base_table()
        mask = (1 << _WINDOW) - 1
        acc: Jacobian = (1, 1, 0)
        i = 0
        while k:
            digit = k & mask
            if digit:
                acc = self._add_affine(acc, table[i][digit - 1])
            k >>= _WINDOW
            i += 1
        out = self._affine(acc)
        if out is None:
            raise UsageError("SM2: scalar is a multiple of the group order")
        return out

    def _mul_jacobian(self, k: int, q: Affine) -> Jacobian:
        """``k * q`` by a width-5 NAF over the odd multiples of ``q``."""
        p = self.p
        q2 = self._double((q[0], q[1], 1))
        odd: list[Jacobian] = [(q[0], q[1], 1)]
        for _ in range((1 << (_NAF_WIDTH - 2)) - 1):
            odd.append(self._add(odd[-1], q2))
        table = self._batch_affine(odd)
        naf: list[int] = []
        full, half = 1 << _NAF_WIDTH, 1 << (_NAF_WIDTH - 1)
        while k:
            if k & 1:
                d = k & (full - 1)
                if d >= half:
                    d -= full
                k -= d
            else:
                d = 0
            naf.append(d)
            k >>= 1
        acc: Jacobian = (1, 1, 0)
        for d in reversed(naf):
            acc = self._double(acc)
            if d > 0:
                acc = self._add_affine(acc, table[d >> 1])
            elif d < 0:
                x, y = table[(-d) >> 1]
                acc = self._add_affine(acc, (x, p - y))
        return acc

    def mul(self, k: int, q: Affine) -> Affine:
        """``k * q`` (affine); raises when the result is the point at infinity."""
        out = self._affine(self._mul_jacobian(k, q))
        if out is None:
            raise SecurityError("SM2: point multiplication gave the point at infinity")
        return out

    def mul_add(self, s: int, t: int, q: Affine) -> Affine | None:
        """``s * G + t * q`` (verification); ``None`` for the point at infinity."""
        table = self._base_table()
        mask = (1 << _WINDOW) - 1
        acc = self._mul_jacobian(t, q)
        i = 0
        while s:
            digit = s & mask
            if digit:
                acc = self._add_affine(acc, table[i][digit - 1])
            s >>= _WINDOW
            i += 1
        return self._affine(acc)


def _h(value: str) -> int:
    return int(value.replace(" ", ""), 16)


#: The recommended curve of GB/T 32918.5-2016 (GM/T 0003.5-2012), OID 1.2.156.10197.1.301.
SM2_P256: Final = Sm2Curve(
    "sm2p256v1",
    p=_h("FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFF"),
    a=_h("FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFC"),
    b=_h("28E9FA9E 9D9F5E34 4D5A9E4B CF6509A7 F39789F5 15AB8F92 DDBCBD41 4D940E93"),
    n=_h("FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF 7203DF6B 21C6052B 53BBF409 39D54123"),
    gx=_h("32C4AE2C 1F198119 5F990446 6A39C994 8FE30BBF F2660BE1 715A4589 334C74C7"),
    gy=_h("BC3736A2 F4F6779C 59BDCEE3 6B692153 D0A9877C C62A4740 02DF32E5 2139F0A0"),
)

#: The 256-bit example curve of GB/T 32918.2/.4 annex A (GM/T 0003-2012), for the published
#: examples only; never for keys.
SM2_EXAMPLE_P256: Final = Sm2Curve(
    "gbt32918-example-fp256",
    p=_h("8542D69E 4C044F18 E8B92435 BF6FF7DE 45728391 5C45517D 722EDB8B 08F1DFC3"),
    a=_h("787968B4 FA32C3FD 2417842E 73BBFEFF 2F3C848B 6831D7E0 EC65228B 3937E498"),
    b=_h("63E4C6D3 B23B0C84 9CF84241 484BFE48 F61D59A5 B16BA06E 6E12D1DA 27C5249A"),
    n=_h("8542D69E 4C044F18 E8B92435 BF6FF7DD 29772063 0485628D 5AE74EE7 C32E79B7"),
    gx=_h("421DEBD6 1B62EAB6 746434EB C3CC315E 32220B3B ADD50BDC 4C4E6C14 7FEDD43D"),
    gy=_h("0680512B CBB42C07 D47349D2 153B70C4 E5D7FDFC BFA36EA1 A85841B9 E46E09A2"),
)


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


class Sm2PublicKey:
    """An SM2 public key: a point on the curve other than infinity (checked on creation)."""

    __slots__ = ("curve", "x", "y")

    def __init__(self, x: int, y: int, curve: Sm2Curve = SM2_P256) -> None:
        if not curve.on_curve(x, y):
            raise DataError("SM2 public key is not a point on the curve", field="public_key")
        self.curve, self.x, self.y = curve, x, y

    @classmethod
    def from_bytes(cls, data: bytes, curve: Sm2Curve = SM2_P256) -> Sm2PublicKey:
        """From the uncompressed form ``04 || x || y``."""
        size = curve.size
        if len(data) != 1 + 2 * size or data[0] != 0x04:
            raise DataError(
                f"SM2 public key must be 04 || x || y ({1 + 2 * size} bytes)", field="public_key"
            )
        return cls(_int(data[1 : 1 + size]), _int(data[1 + size :]), curve)

    def to_bytes(self) -> bytes:
        """The uncompressed form ``04 || x || y``."""
        size = self.curve.size
        return b"\x04" + _bytes(self.x, size) + _bytes(self.y, size)

    def z_value(self, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """``Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` (GB/T 32918.2 clause 5.5)."""
        if len(user_id) >= 8192:
            raise UsageError("SM2 user ID must be shorter than 8192 bytes")
        c, size = self.curve, self.curve.size
        entl = (8 * len(user_id)).to_bytes(2, "big")
        fields = (c.a, c.b, c.gx, c.gy, self.x, self.y)
        return sm3(entl + user_id + b"".join(_bytes(v, size) for v in fields))

    def verify(self, signature: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> None:
        """Check an ``r || s`` signature of ``message``; raise :class:`SignatureMismatch`."""
        c = self.curve
        size = c.size
        if len(signature) != 2 * size:
            raise SignatureMismatch(f"SM2 signature must be r || s ({2 * size} bytes)")
        r, s = _int(signature[:size]), _int(signature[size:])
        if not (0 < r < c.n and 0 < s < c.n):
            raise SignatureMismatch("SM2 signature out of range")
        e = _int(sm3(self.z_value(user_id) + message))
        t = (r + s) % c.n
        if t == 0:
            raise SignatureMismatch("SM2 signature does not verify")
        point = c.mul_add(s, t, (self.x, self.y))
        big_r = 0 if point is None else (e + point[0]) % c.n
        if not hmac.compare_digest(_bytes(big_r, size), signature[:size]):
            raise SignatureMismatch("SM2 signature does not verify")

    def encrypt(self, plaintext: bytes) -> bytes:
        """GB/T 32918.4 encryption: ``C1 || C3 || C2`` (C1 uncompressed, C3 = SM3 tag)."""
        if not plaintext:
            raise UsageError("SM2 encryption needs a non-empty plaintext")
        c = self.curve
        while True:
            k = secrets.randbelow(c.n - 1) + 1
            out = _encrypt_with(self, plaintext, k)
            if out is not None:
                return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sm2PublicKey):
            return NotImplemented
        return (self.curve, self.x, self.y) == (other.curve, other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.curve.name, self.x, self.y))

    def __repr__(self) -> str:
        return f"<Sm2PublicKey {self.curve.name} x={self.x:064X}>"


class Sm2Signer(Protocol):
    """What signs with an SM2 key: an :class:`Sm2PrivateKey`, or a key store's handle on one."""

    @property
    def public_key(self) -> Sm2PublicKey: ...

    def sign(self, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes: ...


def check_value(public_key: Sm2PublicKey) -> bytes:
    """The key check value of an SM2 key pair: ``SM3(04 || x || y)[:3]`` (docs/keystore.md)."""
    return sm3(public_key.to_bytes())[:3]


def _kdf(z: bytes, length: int) -> bytes:
    """GB/T 32918.4 clause 5.4.3: SM3(Z || ct) with a 32-bit counter from 1."""
    out = bytearray()
    counter = 1
    while len(out) < length:
        out += sm3(z + counter.to_bytes(4, "big"))
        counter += 1
    return bytes(out[:length])


def _encrypt_with(key: Sm2PublicKey, plaintext: bytes, k: int) -> bytes | None:
    """One encryption attempt with nonce ``k``; ``None`` when KDF gives all zeros (retry)."""
    c, size = key.curve, key.curve.size
    x1, y1 = c.mul_base(k)
    x2, y2 = c.mul(k, (key.x, key.y))
    xb, yb = _bytes(x2, size), _bytes(y2, size)
    t = _kdf(xb + yb, len(plaintext))
    if not any(t):
        return None
    c2 = bytes(m ^ v for m, v in zip(plaintext, t))
    c3 = sm3(xb + plaintext + yb)
    return b"\x04" + _bytes(x1, size) + _bytes(y1, size) + c3 + c2


def encrypt_with_nonce(key: Sm2PublicKey, plaintext: bytes, k: int) -> bytes:
    """Encryption with a given nonce: **for the published examples only**."""
    out = _encrypt_with(key, plaintext, k)
    if out is None:
        raise UsageError("SM2: this nonce gives an all-zero key stream")
    return out


class Sm2PrivateKey:
    """An SM2 private key ``d`` in [1, n-2]; its value never shows in ``repr`` or ``str``."""

    __slots__ = ("_d", "_public", "curve")

    def __init__(self, d: int, curve: Sm2Curve = SM2_P256) -> None:
        if not 0 < d < curve.n - 1:
            raise DataError("SM2 private key out of range [1, n-2]", field="private_key")
        self._d = d
        self.curve = curve
        x, y = curve.mul_base(d)
        self._public = Sm2PublicKey(x, y, curve)

    @classmethod
    def generate(cls, curve: Sm2Curve = SM2_P256) -> Sm2PrivateKey:
        """A fresh key from the operating system's random source."""
        return cls(secrets.randbelow(curve.n - 2) + 1, curve)

    @classmethod
    def from_bytes(cls, data: bytes, curve: Sm2Curve = SM2_P256) -> Sm2PrivateKey:
        if len(data) != curve.size:
            raise DataError(f"SM2 private key must be {curve.size} bytes", field="private_key")
        return cls(_int(data), curve)

    def to_bytes(self) -> bytes:
        """The key value (32 bytes): only to store it encrypted or in a test key store."""
        return _bytes(self._d, self.curve.size)

    @property
    def public_key(self) -> Sm2PublicKey:
        return self._public

    def sign(self, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """GB/T 32918.2 signature of ``message``: ``r || s``."""
        n = self.curve.n
        while True:
            out = self._sign_with(message, user_id, secrets.randbelow(n - 1) + 1)
            if out is not None:
                return out

    def sign_with_nonce(self, message: bytes, k: int, user_id: bytes = DEFAULT_USER_ID) -> bytes:
        """Signature with a given nonce: **for the published examples only**."""
        out = self._sign_with(message, user_id, k)
        if out is None:
            raise UsageError("SM2: this nonce gives r = 0 or s = 0")
        return out

    def _sign_with(self, message: bytes, user_id: bytes, k: int) -> bytes | None:
        c = self.curve
        n, size = c.n, c.size
        e = _int(sm3(self._public.z_value(user_id) + message))
        x1, _ = c.mul_base(k)
        r = (e + x1) % n
        if r == 0 or r + k == n:
            return None
        s = pow(1 + self._d, -1, n) * (k - r * self._d) % n
        if s == 0:
            return None
        return _bytes(r, size) + _bytes(s, size)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """GB/T 32918.4 decryption of ``C1 || C3 || C2``; raises :class:`SecurityError`."""
        c, size = self.curve, self.curve.size
        head = 1 + 2 * size + 32
        if len(ciphertext) <= head or ciphertext[0] != 0x04:
            raise SecurityError("SM2 ciphertext is not 04 || x || y || C3 || C2")
        x1, y1 = _int(ciphertext[1 : 1 + size]), _int(ciphertext[1 + size : 1 + 2 * size])
        if not c.on_curve(x1, y1):
            raise SecurityError("SM2 ciphertext: C1 is not a point on the curve")
        c3, c2 = ciphertext[1 + 2 * size : head], ciphertext[head:]
        x2, y2 = c.mul(self._d, (x1, y1))
        xb, yb = _bytes(x2, size), _bytes(y2, size)
        t = _kdf(xb + yb, len(c2))
        if not any(t):
            raise SecurityError("SM2 ciphertext does not decrypt (all-zero key stream)")
        plaintext = bytes(m ^ v for m, v in zip(c2, t))
        if not hmac.compare_digest(sm3(xb + plaintext + yb), c3):
            raise SecurityError("SM2 ciphertext does not decrypt (C3 mismatch)")
        return plaintext

    def __repr__(self) -> str:
        return f"<Sm2PrivateKey {self.curve.name} public x={self._public.x:064X} (value hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SM2 private keys are not pickled")
