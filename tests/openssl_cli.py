"""The OpenSSL command line as an outside implementation for test vectors (issue 18).

Where no published vector exists for a rule (SM4 in CMAC or MAC algorithm 1, the SM4 check
value, the SSSE authentications, the perso-file keys), the tests compute the expected value
with ``openssl`` run as a separate process: a different implementation from ours (our code
goes through the ``cryptography`` package), fed only hex keys and raw bytes. Nothing here
imports :mod:`cardperso`. A missing ``openssl`` fails the tests, it does not skip them.

Ciphers: ``sm4-ecb``/``sm4-cbc``, ``des-ede-ecb``/``des-ede-cbc`` (two-key 3DES; single DES
is ``des-ede`` with K1 = K2, as OpenSSL 3 keeps plain DES in the legacy provider),
``aes-128-ecb``/``aes-128-ctr``.
"""

from __future__ import annotations

import shutil
import subprocess

OPENSSL = shutil.which("openssl") or "openssl"


def _run(args: list[str], data: bytes) -> bytes:
    done = subprocess.run(
        [OPENSSL, *args], input=data, capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args[:2])} failed: {done.stderr!r}")
    return done.stdout


def version() -> str:
    """``OpenSSL 3.0.x ...`` (recorded beside hand-run vectors)."""
    return _run(["version"], b"").decode().strip()


def enc(cipher: str, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """``openssl enc -<cipher> -K .. [-iv ..] -nopad``: encrypt whole blocks."""
    args = ["enc", f"-{cipher}", "-K", key.hex(), "-nopad"]
    if iv is not None:
        args += ["-iv", iv.hex()]
    return _run(args, data)


def dec(cipher: str, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """``openssl enc -d -<cipher> -K .. [-iv ..] -nopad``."""
    args = ["enc", "-d", f"-{cipher}", "-K", key.hex(), "-nopad"]
    if iv is not None:
        args += ["-iv", iv.hex()]
    return _run(args, data)


def cmac(cipher: str, key: bytes, data: bytes) -> bytes:
    """``openssl mac -cipher <cipher> -macopt hexkey:.. CMAC`` (e.g. ``SM4-CBC``)."""
    out = _run(["mac", "-cipher", cipher, "-macopt", f"hexkey:{key.hex()}", "CMAC"], data)
    return bytes.fromhex(out.decode().strip())


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """``openssl mac -digest SHA256 -macopt hexkey:.. HMAC``."""
    out = _run(["mac", "-digest", "SHA256", "-macopt", f"hexkey:{key.hex()}", "HMAC"], data)
    return bytes.fromhex(out.decode().strip())


def sha256(data: bytes) -> bytes:
    """``openssl dgst -sha256 -binary``."""
    return _run(["dgst", "-sha256", "-binary"], data)


def cbc_mac(cipher: str, key: bytes, padded: bytes, iv: bytes | None = None) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 1 from OpenSSL's CBC: the last block of the ciphertext of
    already padded data (``cipher`` is ``sm4-cbc`` or ``des-ede-cbc``)."""
    block = 8 if cipher.startswith("des") else 16
    iv = iv if iv is not None else bytes(block)
    return enc(cipher, key, padded, iv)[-block:]
