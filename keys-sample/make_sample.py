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

Run ``.venv/bin/python keys-sample/make_sample.py``: rewrites keys.json and prints the check values
to paste into ``SAMPLE_KCVS`` (tests/test_keystore_sample.py checks both stay in step).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cardperso.crypto import kcv, odd_parity
from cardperso.keystore.base import CEREMONY_KEY_SET, reference_key_set

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
    return {"format": "cardperso-keystore/1", "_warning": WARNING, "test_keys": True, "keys": keys}


if __name__ == "__main__":
    doc = sample_document()
    Path(__file__).with_name("keys.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    for name, entry in doc["keys"].items():
        print(f'    "{name}": "{entry["kcv"]}",')
