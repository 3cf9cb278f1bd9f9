"""Two-stage cards: the profile's ``two_stage`` section and the SSD transport-key delivery.

How this works
--------------
A two-stage profile (``profiles/ssc3-pboc-2stage.yaml``) is an ordinary profile for the
factory (SSSE only, so data preparation and the line need no bank key) plus a ``two_stage``
section checked by :data:`cardperso.profiles.loader.TWO_STAGE`: the bank's supplementary
security domain (AID, privileges, key versions, key names) and ``bank_profile``, the profile
whose ``pboc`` section the bank personalizes with its own keys.

The bank's SSD **transport keys** travel to the factory wrapped under the key-exchange key
(``kek-exchange``, held by both parties after a key ceremony): :func:`make_delivery` asks the
bank's store for the GP key set diversified from ``bank-ssd-transport-kmc`` with a batch KDD
(``SHA-256("cardperso ssd transport " ‖ batch)[:10]``) **wrapped under the exchange key**, so
the keys never exist in clear outside the store; the delivery file carries the wrapped keys
and their check values (format ``cardperso-ssd-transport/1``, JSON). The factory unwraps them
only to encrypt them at once under the session DEK of the card's ISD channel (PUT KEY); the
bank recomputes them from its KMC to open the SSD and replace them with per-card keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardperso.crypto import equal, kcv
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import DataError, KeyStoreError, ProfileError
from cardperso.keystore.base import DerivedKey, KeyStore
from cardperso.keystore.software import parse_json_document
from cardperso.profiles import schema as s
from cardperso.profiles.loader import TWO_STAGE, load_profile, profile_dirs
from cardperso.profiles.model import Profile

__all__ = [
    "DELIVERY_FORMAT",
    "SsdSpec",
    "TransportDelivery",
    "TwoStage",
    "load_two_stage",
    "make_delivery",
]

DELIVERY_FORMAT = "cardperso-ssd-transport/1"


@dataclass(frozen=True, slots=True)
class SsdSpec:
    aid: bytes
    privileges: bytes
    transport_kvn: int
    bank_kvn: int
    key_exchange_kek: str
    transport_kmc: str
    kmc: str
    diversification: str


@dataclass(frozen=True, slots=True)
class TwoStage:
    """A two-stage product: the factory profile, the SSD, and the bank's PBOC profile."""

    factory: Profile
    ssd: SsdSpec
    bank: Profile

    @property
    def pboc_aid(self) -> bytes:
        assert self.bank.pboc is not None
        return self.bank.pboc.aid


def _path_of(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        return Path(name_or_path)
    for d in profile_dirs():
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise ProfileError(f"no profile named {name_or_path!r}")


def load_two_stage(name_or_path: str) -> TwoStage:
    """Load a two-stage profile (``ProfileError`` when it has no ``two_stage`` section or its
    bank profile has no ``pboc`` section)."""
    factory = load_profile(name_or_path)
    path = _path_of(name_or_path)
    root = s.load_yaml(path.read_text(encoding="utf-8"), str(path))
    node = s.find_node(root, "two_stage")
    if node is None:
        raise ProfileError(f"{path}: profile {factory.name} has no 'two_stage' section")
    data: dict[str, Any] = s.check(TWO_STAGE, node, str(path))
    ssd = data["ssd"]
    spec = SsdSpec(
        ssd["aid"],
        ssd["privileges"],
        ssd["transport_kvn"],
        ssd["bank_kvn"],
        ssd["key_exchange_kek"],
        ssd["transport_kmc"],
        ssd["kmc"],
        ssd["diversification"],
    )
    if factory.pboc is not None:
        raise ProfileError(
            f"{path}: a two-stage profile has no 'pboc' section: the factory never holds bank keys"
        )
    bank = load_profile(data["bank_profile"])
    if bank.pboc is None:
        raise ProfileError(f"{path}: bank profile {bank.name} has no 'pboc' section")
    return TwoStage(factory, spec, bank)


def batch_kdd(batch: str) -> bytes:
    """The 10-byte diversification data of a batch's SSD transport keys."""
    return hashlib.sha256(b"cardperso ssd transport " + batch.encode("utf-8")).digest()[:10]


@dataclass(frozen=True, slots=True)
class TransportDelivery:
    """The SSD transport keys of one batch, wrapped under the key-exchange key."""

    batch: str
    ssd_aid: bytes
    kvn: int
    kek: str
    kek_kcv: bytes
    enc: DerivedKey = field(repr=False)
    mac: DerivedKey = field(repr=False)
    dek: DerivedKey = field(repr=False)

    def to_json(self) -> str:
        def key(k: DerivedKey) -> dict[str, str]:
            return {"wrapped": k.data.hex().upper(), "kcv": k.kcv.hex().upper()}

        doc = {
            "format": DELIVERY_FORMAT,
            "batch": self.batch,
            "ssd_aid": self.ssd_aid.hex().upper(),
            "kvn": self.kvn,
            "kek": self.kek,
            "kek_kcv": self.kek_kcv.hex().upper(),
            "keys": {"enc": key(self.enc), "mac": key(self.mac), "dek": key(self.dek)},
        }
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "delivery") -> TransportDelivery:
        doc = parse_json_document(text, where)  # a name twice in one object is refused
        try:
            if not isinstance(doc, dict):
                raise DataError(f"not a {DELIVERY_FORMAT} file", field="format")
            if doc.get("format") != DELIVERY_FORMAT:
                raise DataError(f"not a {DELIVERY_FORMAT} file", field="format")
            kek = str(doc["kek"])

            def key(name: str) -> DerivedKey:
                k = doc["keys"][name]
                return DerivedKey("3DES", bytes.fromhex(k["kcv"]), kek, bytes.fromhex(k["wrapped"]))

            return cls(
                str(doc["batch"]),
                bytes.fromhex(doc["ssd_aid"]),
                int(doc["kvn"]),
                kek,
                bytes.fromhex(doc["kek_kcv"]),
                key("enc"),
                key("mac"),
                key("dek"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{where}: malformed transport-key delivery") from None

    def unwrap(self, store: KeyStore) -> StaticKeys:
        """The clear transport keys (checked against their KCVs); the store must hold the
        same key-exchange key (checked by its KCV)."""
        if not equal(store.kcv(self.kek), self.kek_kcv):
            raise KeyStoreError(
                f"key {self.kek!r} in {store.location} is not the key-exchange key of this delivery"
            )
        enc, mac, dek = (store.unwrap_key(k).value for k in (self.enc, self.mac, self.dek))
        return StaticKeys(enc, mac, dek, "3DES")


def make_delivery(store: KeyStore, two: TwoStage, batch: str) -> TransportDelivery:
    """The bank's delivery of a batch's SSD transport keys (wrapped inside the store)."""
    ssd = two.ssd
    (keys,) = store.diversify_gp(
        ssd.transport_kmc, [batch_kdd(batch)], ssd.diversification, wrap_under=ssd.key_exchange_kek
    )
    return TransportDelivery(
        batch,
        ssd.aid,
        ssd.transport_kvn,
        ssd.key_exchange_kek,
        store.kcv(ssd.key_exchange_kek),
        keys.enc,
        keys.mac,
        keys.dek,
    )


def transport_keys(store: KeyStore, two: TwoStage, batch: str) -> StaticKeys:
    """The bank recomputes a batch's transport keys from its transport KMC."""
    (keys,) = store.diversify_gp(
        two.ssd.transport_kmc, [batch_kdd(batch)], two.ssd.diversification, wrap_under=None
    )
    values = [k.secret().value for k in (keys.enc, keys.mac, keys.dek)]
    for k, v in zip((keys.enc, keys.mac, keys.dek), values, strict=True):
        if not equal(kcv("3DES", v), k.kcv):
            raise KeyStoreError("transport key does not match its check value")
    return StaticKeys(values[0], values[1], values[2], "3DES")
