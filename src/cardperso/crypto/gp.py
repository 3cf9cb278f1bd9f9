"""GlobalPlatform key cryptography: per-card static keys and the SCP02/SCP03 session math.

How this works
--------------
* **Diversification** turns a master key (KMC) and each card's key diversification data
  (KDD = the first 10 bytes of the INITIALIZE UPDATE response) into the card's static
  ENC/MAC/DEK keys. Methods live in a registry (:func:`register_diversification`) so that a
  profile can name the one its cards use:

  - ``"emv"`` (EMV CPS):
    ``K = TDES(KMC)[KDD[4:10] || F0 || id] || TDES(KMC)[KDD[4:10] || 0F || id]``
  - ``"visa2"``: the same with ``KDD[0:2] || KDD[4:8]`` in place of ``KDD[4:10]``
  - ``"kdf3"`` (AES, SCP03 cards; the scheme GlobalPlatformPro calls KDF3): NIST SP 800-108
    KDF in counter mode with AES-CMAC as PRF, an 8-bit counter *before* the fixed input, and
    fixed input ``00 00 00 id 00 || KDD``; output length = KMC length
  - ``"none"``: the KMC itself is the card key (development cards)

  Key ids: ENC = 01, MAC = 02, DEK = 03. Every method is batch-first: one cipher call per key
  id over all KDDs (``kdf3`` is CMAC based and runs per card).
* **SCP02** (GP Card Spec appendix E): session keys ``TDES-CBC(K, IV 0)[const || seq || 00x12]``;
  cryptograms are MAC algorithm 1 with full 3DES; C-MAC is MAC algorithm 3 with an ICV.
* **SCP03** (GP Amendment D): the SP 800-108 KDF with AES-CMAC and the Amendment D label
  ``00 x 11 || const || 00 || L(2) || i || context``; cryptograms and session keys come from it.

The functions here are shared by the host and the card sides in :mod:`cardperso.protocol`,
so a derivation bug shows on both ends against public vectors instead of hiding in a mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cardperso.crypto import primitives as cp
from cardperso.errors import UsageError

__all__ = [
    "KEY_ID_DEK",
    "KEY_ID_ENC",
    "KEY_ID_MAC",
    "Diversifier",
    "Scp02SessionKeys",
    "Scp03SessionKeys",
    "StaticKeys",
    "diversification_methods",
    "diversify",
    "diversify_one",
    "kbkdf_cmac",
    "kdf3",
    "register_diversification",
    "scp02_card_cryptogram",
    "scp02_host_cryptogram",
    "scp02_icv_encrypt",
    "scp02_mac",
    "scp02_session_keys",
    "scp03_card_challenge",
    "scp03_cryptogram",
    "scp03_kdf",
    "scp03_session_keys",
]

KEY_ID_ENC, KEY_ID_MAC, KEY_ID_DEK = 0x01, 0x02, 0x03
_KEY_IDS = (KEY_ID_ENC, KEY_ID_MAC, KEY_ID_DEK)


@dataclass(frozen=True, slots=True, repr=False)
class StaticKeys:
    """A card's static secure-channel keys. ``repr`` shows check values only."""

    enc: bytes
    mac: bytes
    dek: bytes
    algorithm: str = "3DES"  # "3DES" (SCP02) or "AES" (SCP03); used for check values

    def __post_init__(self) -> None:
        for key in (self.enc, self.mac, self.dek):
            cp.check_key(self.algorithm, key)

    def kcvs(self) -> tuple[bytes, bytes, bytes]:
        """Check values (3 bytes each) of ENC, MAC and DEK."""
        return (
            cp.kcv(self.algorithm, self.enc),
            cp.kcv(self.algorithm, self.mac),
            cp.kcv(self.algorithm, self.dek),
        )

    def __repr__(self) -> str:
        e, m, d = (k.hex().upper() for k in self.kcvs())
        return f"StaticKeys({self.algorithm}, kcv enc={e} mac={m} dek={d})"

    __str__ = __repr__


Diversifier = Callable[[bytes, Sequence[bytes]], list[StaticKeys]]
_REGISTRY: dict[str, Diversifier] = {}


def register_diversification(name: str, fn: Diversifier) -> None:
    """Register a diversification method ``fn(kmc, kdds) -> list[StaticKeys]`` under ``name``
    (a vendor scheme chosen by a profile). Re-registering a name replaces it."""
    _REGISTRY[name] = fn


def diversification_methods() -> list[str]:
    """Names of the registered diversification methods."""
    return sorted(_REGISTRY)


def diversify(kmc: bytes, kdds: Sequence[bytes], method: str = "emv") -> list[StaticKeys]:
    """Per-card static keys for each KDD (10 bytes) from the master key ``kmc``."""
    fn = _REGISTRY.get(method)
    if fn is None:
        raise UsageError(
            f"unknown GP key diversification {method!r} (known: {diversification_methods()})"
        )
    for kdd in kdds:
        if len(kdd) != 10:
            raise UsageError("KDD must be 10 bytes (start of the INITIALIZE UPDATE response)")
    return fn(kmc, kdds)


def diversify_one(kmc: bytes, kdd: bytes, method: str = "emv") -> StaticKeys:
    """One card's keys (the batch form with one element)."""
    return diversify(kmc, [kdd], method)[0]


def _tdes_diversify(
    kmc: bytes, kdds: Sequence[bytes], part: Callable[[bytes], bytes]
) -> list[StaticKeys]:
    if len(kmc) != 16:
        raise UsageError("3DES KMC must be 16 bytes")
    per_id: list[bytes] = []
    for key_id in _KEY_IDS:
        blocks = b"".join(
            part(kdd) + bytes([0xF0, key_id]) + part(kdd) + bytes([0x0F, key_id]) for kdd in kdds
        )
        per_id.append(cp.ecb_encrypt("3DES", kmc, blocks) if blocks else b"")
    enc, mac, dek = per_id
    return [
        StaticKeys(enc[i : i + 16], mac[i : i + 16], dek[i : i + 16])
        for i in range(0, 16 * len(kdds), 16)
    ]


def _emv(kmc: bytes, kdds: Sequence[bytes]) -> list[StaticKeys]:
    return _tdes_diversify(kmc, kdds, lambda kdd: kdd[4:10])


def _visa2(kmc: bytes, kdds: Sequence[bytes]) -> list[StaticKeys]:
    return _tdes_diversify(kmc, kdds, lambda kdd: kdd[0:2] + kdd[4:8])


def _none(kmc: bytes, kdds: Sequence[bytes]) -> list[StaticKeys]:
    algorithm = "3DES" if len(kmc) in (8, 16) else "AES"
    return [StaticKeys(kmc, kmc, kmc, algorithm) for _ in kdds]


def kbkdf_cmac(
    key: bytes, length: int, prefix: bytes = b"", suffix: bytes = b"", counter_bytes: int = 1
) -> bytes:
    """NIST SP 800-108 KDF in counter mode with AES-CMAC as PRF: ``length`` bytes of
    ``CMAC(key, prefix || [i] || suffix)`` for i = 1, 2, ... (``counter_bytes`` wide, big
    endian). An empty prefix is NIST's "counter before fixed input" layout."""
    n = -(-length // 16)
    if length <= 0 or n >= 1 << (8 * counter_bytes):
        raise UsageError("KBKDF output length out of range for the counter width")
    return b"".join(
        cp.cmac("AES", key, prefix + i.to_bytes(counter_bytes, "big") + suffix)
        for i in range(1, n + 1)
    )[:length]


def kdf3(kmc: bytes, key_id: int, kdd: bytes) -> bytes:
    """The ``kdf3`` AES diversification of one key: SP 800-108 counter mode, PRF AES-CMAC,
    8-bit counter i from 1 before the fixed input ``00 00 00 id 00 || KDD``, as many bytes
    as the KMC is long."""
    return kbkdf_cmac(kmc, len(kmc), suffix=bytes([0, 0, 0, key_id, 0]) + kdd)


def _kdf3(kmc: bytes, kdds: Sequence[bytes]) -> list[StaticKeys]:
    if len(kmc) not in (16, 24, 32):
        raise UsageError("AES KMC must be 16, 24 or 32 bytes")
    out = []
    for kdd in kdds:
        enc, mac, dek = (kdf3(kmc, key_id, kdd) for key_id in _KEY_IDS)
        out.append(StaticKeys(enc, mac, dek, "AES"))
    return out


register_diversification("emv", _emv)
register_diversification("visa2", _visa2)
register_diversification("kdf3", _kdf3)
register_diversification("none", _none)


# -- SCP02 ---------------------------------------------------------------------------------------

_SCP02_CONST = {"enc": b"\x01\x82", "mac": b"\x01\x01", "rmac": b"\x01\x02", "dek": b"\x01\x81"}


@dataclass(frozen=True, slots=True, repr=False)
class Scp02SessionKeys:
    """SCP02 session keys (16-byte 3DES each)."""

    enc: bytes
    mac: bytes
    rmac: bytes
    dek: bytes

    def __repr__(self) -> str:
        kcvs = " ".join(
            f"{n}={cp.kcv('3DES', k).hex().upper()}"
            for n, k in (
                ("enc", self.enc),
                ("mac", self.mac),
                ("rmac", self.rmac),
                ("dek", self.dek),
            )
        )
        return f"Scp02SessionKeys(kcv {kcvs})"


def scp02_session_keys(static: StaticKeys, seq: bytes) -> Scp02SessionKeys:
    """SCP02 session keys from the 2-byte sequence counter:
    ``TDES-CBC(K, IV 0)[const || seq || 00 x 12]``; S-ENC from the static ENC key, S-MAC and
    S-RMAC from MAC, S-DEK from DEK."""
    if len(seq) != 2:
        raise UsageError("SCP02 sequence counter must be 2 bytes")

    def derive(key: bytes, const: str) -> bytes:
        return cp.cbc_encrypt("3DES", key, _SCP02_CONST[const] + seq + bytes(12))

    return Scp02SessionKeys(
        enc=derive(static.enc, "enc"),
        mac=derive(static.mac, "mac"),
        rmac=derive(static.mac, "rmac"),
        dek=derive(static.dek, "dek"),
    )


def scp02_card_cryptogram(
    s_enc: bytes, host_challenge: bytes, seq: bytes, card_challenge: bytes
) -> bytes:
    """Card cryptogram: MAC algorithm 1 (full 3DES, padding 2, ICV 0) under S-ENC over
    ``host challenge || seq || card challenge``."""
    return cp.mac_algorithm1("3DES", s_enc, host_challenge + seq + card_challenge)


def scp02_host_cryptogram(
    s_enc: bytes, host_challenge: bytes, seq: bytes, card_challenge: bytes
) -> bytes:
    """Host cryptogram: as the card cryptogram over ``seq || card challenge || host challenge``."""
    return cp.mac_algorithm1("3DES", s_enc, seq + card_challenge + host_challenge)


def scp02_mac(s_mac: bytes, data: bytes, icv: bytes) -> bytes:
    """SCP02 C-MAC / R-MAC: MAC algorithm 3 (single-DES CBC, 3DES last block), padding 2."""
    return cp.mac_algorithm3(s_mac, data, padding=2, iv=icv)


def scp02_icv_encrypt(s_mac: bytes, mac: bytes) -> bytes:
    """Next ICV with the "ICV encryption" option: single DES under the left half of S-MAC."""
    return cp.ecb_encrypt("3DES", s_mac[:8], mac)


# -- SCP03 ---------------------------------------------------------------------------------------

SCP03_CARD_CRYPTOGRAM, SCP03_HOST_CRYPTOGRAM, SCP03_CARD_CHALLENGE = 0x00, 0x01, 0x02
SCP03_S_ENC, SCP03_S_MAC, SCP03_S_RMAC = 0x04, 0x06, 0x07


def scp03_kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """GP Amendment D 4.1.5: SP 800-108 counter-mode KDF with AES-CMAC; each block is
    ``CMAC(key, 00 x 11 || constant || 00 || L(2 bytes) || i || context)``, i from 1."""
    if bits % 8 or not 0 < bits <= 0xFFFF:
        raise UsageError("SCP03 KDF output length must be a positive number of bytes")
    label = bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big")
    return kbkdf_cmac(key, bits // 8, prefix=label, suffix=context)


@dataclass(frozen=True, slots=True, repr=False)
class Scp03SessionKeys:
    """SCP03 session keys (AES, the static keys' length); the DEK stays static."""

    enc: bytes
    mac: bytes
    rmac: bytes

    def __repr__(self) -> str:
        kcvs = " ".join(
            f"{n}={cp.kcv('AES', k).hex().upper()}"
            for n, k in (("enc", self.enc), ("mac", self.mac), ("rmac", self.rmac))
        )
        return f"Scp03SessionKeys(kcv {kcvs})"


def scp03_session_keys(static: StaticKeys, context: bytes) -> Scp03SessionKeys:
    """S-ENC, S-MAC, S-RMAC from ``context`` = host challenge || card challenge."""
    return Scp03SessionKeys(
        enc=scp03_kdf(static.enc, SCP03_S_ENC, context, 8 * len(static.enc)),
        mac=scp03_kdf(static.mac, SCP03_S_MAC, context, 8 * len(static.mac)),
        rmac=scp03_kdf(static.mac, SCP03_S_RMAC, context, 8 * len(static.mac)),
    )


def scp03_cryptogram(s_mac: bytes, constant: int, context: bytes, length: int = 8) -> bytes:
    """Card (constant 00) or host (constant 01) cryptogram, ``length`` bytes (S8: 8)."""
    return scp03_kdf(s_mac, constant, context, 8 * length)


def scp03_card_challenge(static_enc: bytes, seq: bytes, aid: bytes, length: int = 8) -> bytes:
    """Pseudo-random card challenge (i bit 0x10): KDF under the static ENC key with constant 02
    and context ``sequence counter (3 bytes) || AID of the invoking application``."""
    if len(seq) != 3:
        raise UsageError("SCP03 sequence counter must be 3 bytes")
    return scp03_kdf(static_enc, SCP03_CARD_CHALLENGE, seq + aid, 8 * length)
