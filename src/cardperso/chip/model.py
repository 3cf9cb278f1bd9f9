"""What a chip step takes and returns: the plan from the profile, one card's data, the result,
and :class:`ChipFailure` (the card goes to the reject box)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.errors import CardPersoError

__all__ = ["CardApp", "CardData", "ChipFailure", "ChipPlan", "ChipResult"]


class ChipFailure(CardPersoError):
    """The chip could not be personalized or did not verify; the card goes to the reject box."""

    exit_code = 3

    def __init__(self, step: str, reason: str, *, auth_failure: bool = False) -> None:
        self.step, self.reason, self.auth_failure = step, reason, auth_failure
        super().__init__(f"{step}: {reason}")


@dataclass(frozen=True, slots=True)
class CardApp:
    """One application's personalization data for one card (secret DGIs wrapped under the KEK).
    ``repr`` leaves out the DGIs (personal data)."""

    name: str
    aid: bytes
    dgis: tuple[tuple[int, bytes], ...] = field(repr=False)
    secret: frozenset[int]


@dataclass(frozen=True, slots=True)
class CardData:
    """What the chip workflow needs of one perso-file record."""

    index: int
    card_no: str
    pan: str
    psn: str
    apps: tuple[CardApp, ...]

    def __repr__(self) -> str:  # no personal data in reprs
        return f"CardData(index={self.index}, card_no={self.card_no!r}, apps={[a.name for a in self.apps]})"


@dataclass(frozen=True, slots=True)
class ChipPlan:
    """What a station needs from the profile to encode a chip.

    The blank card is opened with the card vendor's transport key (``transport_kmc``
    diversified with ``transport_diversification``; blank virtual cards carry the GP test key
    itself, hence ``"none"``), never with the issuer's KMC; with ``put_key`` the transport keys
    are then replaced (PUT KEY) by per-card keys diversified from ``kmc`` with
    ``diversification`` under key version ``new_kvn``.
    """

    kmc: str
    kek: str
    transport_kmc: str = "gp-transport"
    transport_diversification: str = "none"
    put_key: bool = True
    new_kvn: int = 0x20
    scp: str = "02"
    i: int = 0x55
    kvn: int = 0
    diversification: str = "emv"
    security_level: int = 0x03
    atr_prefix: bytes = b""
    card_id_check: str = "chip-serial"  # the profile's ssse.card_id.tail
    ssse_aid: bytes = b""
    ssse_algorithm: str = "SM4"
    ssse_generation: int = 3
    ssse_read_key: int = 0x0A
    ssse_irk: int = 0x01
    #: P2 of the read-back's INTERNAL AUTHENTICATE (profile ssse.internal_auth_p2)
    ssse_ia_p2: int = 0x01
    imk_ac: str = ""
    verify_ac: bool = True
    dgi_format: int = 0x08
    max_data: int = 239
    #: ``encrypted-first`` sends each application's encrypted DGIs before its clear ones.
    store_data_order: str = "prepared"
    secure_card: bool = True


@dataclass(frozen=True, slots=True)
class ChipResult:
    chip_serial: bytes
    card_id: bytes
    arqc_verified: bool
    apdus: int = 0
    checks: tuple[str, ...] = field(default=())
