"""Regenerate keys-sample/keys.json, the published TEST key set (never use it in production).

Names, algorithms and purposes: :data:`cardperso.keystore.base.REFERENCE_KEY_SET`, plus the card
vendor's transport keys of the simulated blank cards (the ceremony keys of
:data:`cardperso.keystore.base.CEREMONY_KEY_SET` but ``kek-exchange``): ``gp-transport`` (3DES),
``gp-transport-aes`` (AES-128) and the native chips' transport masters ``native-transport`` (SM4)
and ``native-transport-3des``: the GlobalPlatform test key 40 41 .. 4F, the key every blank
virtual card carries (a native blank's key 00 is that master diversified by its serial) (in a factory the vendor's key comes by key ceremony, ``cardperso keys
import-components``). ``gp-kmc`` and ``gp-kmc-aes`` are the GP test key too (published
vectors are computed from it); every other key is the first N bytes of
SHA-256("cardperso sample key " + name), with DES odd parity for 3DES keys.

The ODA test chain (RSA, e = 3, 1408 bits): ``oda-ca-A000000333-F1`` (the test CA, RID and
index in its name) and ``oda-issuer``. Their primes are deterministic: for prime i of key
``name``, the integer of SHA-256("cardperso sample rsa <name> <i> <counter>") blocks for
counter 0, 1, ... (bits/2 bits, top two bits and bit 0 set), then the next value, stepping by
2, that passes Miller-Rabin with the first 24 primes as bases and is 2 mod 3 (so e = 3 is
invertible); p is the larger prime, qinv = q^-1 mod p (:func:`sample_rsa`).

The test PKI's SM2 CA key pairs ``pki-root`` and ``pki-issuing-ca`` (docs/pki.md): the
private key is the integer of SHA-256("cardperso sample sm2 " + name) reduced to [1, n-2]
(n the order of the SM2 curve) (:func:`sample_sm2`).

Run ``.venv/bin/python keys-sample/make_sample.py``: rewrites keys.json and prints the check values
to paste into ``SAMPLE_KCVS`` (tests/test_keystore_sample.py checks both stay in step).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from cardperso.crypto import kcv, odd_parity
from cardperso.crypto.rsa import RsaKey
from cardperso.crypto.sm2 import SM2_P256, Sm2PrivateKey
from cardperso.keystore.base import CEREMONY_KEY_SET, reference_key_set
from cardperso.keystore.oda import ISSUER_KEY, RID_PBOC, TEST_CA_INDEX, ca_key_name
from cardperso.keystore.rsakeys import rsa_entry
from cardperso.keystore.sm2keys import PKI_ISSUING_KEY, PKI_ROOT_KEY, sm2_entry

GP_TEST_KEY = bytes(range(0x40, 0x50))
#: The sample store keeps the 3DES transport KEK it was published with (new stores get AES).
SAMPLE_KEK_ALGORITHM = "3DES"
WARNING = (
    "PUBLISHED TEST KEYS - for tests and demonstrations only; anyone can read them. "
    "Production refuses them (recognised by their check values). "
    "Run `cardperso keys generate --out FILE` for a store of fresh keys."
)


#: The card vendor's keys of the simulated blanks (not generated: by key ceremony): every
#: ceremony key but the bank's key-exchange key (that one is in bank-keys.json).
SAMPLE_TRANSPORT_KEYS = {n: v for n, v in CEREMONY_KEY_SET.items() if n != "kek-exchange"}


def sample_value(name: str, algorithm: str, length: int) -> bytes:
    """The sample value of ``name`` (rule in the module docstring)."""
    if name in ("gp-kmc", "gp-kmc-aes", *SAMPLE_TRANSPORT_KEYS):
        return GP_TEST_KEY
    value = hashlib.sha256(f"cardperso sample key {name}".encode()).digest()[:length]
    return odd_parity(value) if algorithm == "3DES" else value


_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79,
          83, 89)  # fmt: skip

#: The ODA sample chain: name -> (bits, purpose).
SAMPLE_RSA_KEYS = {
    ca_key_name(RID_PBOC, TEST_CA_INDEX): (1408, "ODA test certification authority (CAPK F1)"),
    ISSUER_KEY: (1408, "ODA issuer key pair, certified by the test CA"),
}


#: The test PKI's sample CA keys: name -> purpose.
SAMPLE_SM2_KEYS = {
    PKI_ROOT_KEY: "PKI test root CA (SM2), certifies the issuing CA",
    PKI_ISSUING_KEY: "PKI test issuing CA (SM2), certifies the cardholders' keys",
}


def sample_sm2(name: str) -> Sm2PrivateKey:
    """The deterministic sample SM2 key pair ``name`` (rule in the module docstring)."""
    digest = hashlib.sha256(f"cardperso sample sm2 {name}".encode()).digest()
    d = int.from_bytes(digest, "big") % (SM2_P256.n - 2) + 1
    return Sm2PrivateKey.from_bytes(d.to_bytes(32, "big"))


def _probable_prime(n: int) -> bool:
    if n < 2 or any(n % b == 0 for b in _BASES):
        return n in _BASES
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for b in _BASES:
        x = pow(b, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _sample_prime(name: str, i: int, bits: int) -> int:
    stream = b""
    counter = 0
    while len(stream) * 8 < bits:
        stream += hashlib.sha256(f"cardperso sample rsa {name} {i} {counter}".encode()).digest()
        counter += 1
    n = int.from_bytes(stream, "big") >> (len(stream) * 8 - bits)
    n |= (3 << (bits - 2)) | 1
    while not (n % 3 == 2 and _probable_prime(n)):
        n += 2
    return n


def sample_rsa(name: str, bits: int) -> RsaKey:
    """The deterministic sample RSA key pair ``name`` (rule in the module docstring)."""
    a, b = _sample_prime(name, 0, bits // 2), _sample_prime(name, 1, bits // 2)
    p, q = max(a, b), min(a, b)
    d = pow(3, -1, (p - 1) * (q - 1) // math.gcd(p - 1, q - 1))
    half = bits // 16
    return RsaKey.from_crt(
        (p * q).to_bytes(bits // 8, "big"), 3, p.to_bytes(half, "big"), q.to_bytes(half, "big"),
        (d % (p - 1)).to_bytes(half, "big"), (d % (q - 1)).to_bytes(half, "big"),
        pow(q, -1, p).to_bytes(half, "big"),
    )  # fmt: skip


def sample_document() -> dict[str, Any]:
    keys = {}
    for name, (algorithm, length, purpose) in sorted(
        {**reference_key_set(SAMPLE_KEK_ALGORITHM), **SAMPLE_TRANSPORT_KEYS}.items()
    ):
        value = sample_value(name, algorithm, length)
        if name.startswith(("gp-kmc", "gp-transport", "native-transport")):
            purpose += ", GlobalPlatform test key 40..4F"
        keys[name] = {
            "algorithm": algorithm,
            "value": value.hex().upper(),
            "kcv": kcv(algorithm, value).hex().upper(),
            "purpose": purpose,
        }
    for name, (bits, purpose) in SAMPLE_RSA_KEYS.items():
        keys[name] = {**rsa_entry(sample_rsa(name, bits)), "purpose": purpose}
    for name, purpose in SAMPLE_SM2_KEYS.items():
        keys[name] = {**sm2_entry(sample_sm2(name)), "purpose": purpose}
    keys = dict(sorted(keys.items()))
    return {"format": "cardperso-keystore/1", "_warning": WARNING, "test_keys": True, "keys": keys}


if __name__ == "__main__":
    doc = sample_document()
    Path(__file__).with_name("keys.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    for name, entry in doc["keys"].items():
        print(f'    "{name}": "{entry["kcv"]}",')
