"""Regenerate keys-sample/keys.json, the published TEST key set (never use it in production).

Values: the GlobalPlatform test key 40 41 .. 4F for ``gp-kmc`` (3DES) and ``gp-kmc-aes`` (AES-128),
so blank cards with default keys authenticate; every other key is the first 16 bytes of
SHA-256("cardperso sample key " + name), with DES odd parity for 3DES keys. Run:
``.venv/bin/python keys-sample/make_sample.py`` (rewrites keys.json and prints the KCVs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cardperso.crypto import kcv, odd_parity

GP_TEST_KEY = bytes(range(0x40, 0x50))

#: name -> (algorithm, purpose)
SAMPLE_KEYS: dict[str, tuple[str, str]] = {
    "gp-kmc": ("3DES", "issuer security domain master key (SCP02), GP test key 40..4F"),
    "gp-kmc-aes": ("AES", "issuer security domain master key (SCP03), GP test key 40..4F"),
    "pboc-imk-ac": ("3DES", "PBOC issuer master key, application cryptograms (MK-AC)"),
    "pboc-imk-smi": ("3DES", "PBOC issuer master key, secure messaging integrity (MK-SMI)"),
    "pboc-imk-smc": ("3DES", "PBOC issuer master key, secure messaging confidentiality (MK-SMC)"),
    "ssse-mk": ("SM4", "SSSE card master (control) key"),
    "ssse-irk": ("SM4", "SSSE internal authentication key"),
    "ssse-ek-read": ("SM4", "SSSE external authentication key for reading (key 0A)"),
    "ssse-uk-ef05": ("SM4", "SSSE update key for EF05 (key 04)"),
    "ssse-uk-ef06": ("SM4", "SSSE update key for EF06 (key 04)"),
    "ssse-uk-ef0d": ("SM4", "SSSE update key for EF0D (key 0D)"),
    "ssse-pin-reload": ("SM4", "SSSE PIN reload key (key 06)"),
    "transport-kek": ("3DES", "transport KEK protecting personalization files"),
}
for _name in [n for n in SAMPLE_KEYS if n.startswith("ssse-")]:
    SAMPLE_KEYS[f"{_name}-3des"] = ("3DES", SAMPLE_KEYS[_name][1] + ", 2nd generation (3DES)")


def sample_value(name: str, algorithm: str) -> bytes:
    """The sample value of ``name`` (rule in the module docstring)."""
    if name in ("gp-kmc", "gp-kmc-aes"):
        return GP_TEST_KEY
    value = hashlib.sha256(f"cardperso sample key {name}".encode()).digest()[:16]
    return odd_parity(value) if algorithm == "3DES" else value


def sample_document() -> dict[str, object]:
    keys = {}
    for name, (algorithm, purpose) in sorted(SAMPLE_KEYS.items()):
        value = sample_value(name, algorithm)
        keys[name] = {
            "algorithm": algorithm,
            "value": value.hex().upper(),
            "kcv": kcv(algorithm, value).hex().upper(),
            "purpose": purpose,
        }
    return {
        "format": "cardperso-keystore/1",
        "_warning": (
            "PUBLISHED TEST KEYS - for tests and demonstrations only. Anyone can read them. "
            "Production refuses them (recognised by their check values). "
            "Run `cardperso keys generate --out FILE` for a fresh store."
        ),
        "test_keys": True,
        "keys": keys,
    }


if __name__ == "__main__":
    doc = sample_document()
    out = Path(__file__).with_name("keys.json")
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for name, entry in doc["keys"].items():  # type: ignore[attr-defined]
        print(f'    "{name}": "{entry["kcv"]}",')
