"""The issuer host: ARQC verification, ARPC method 1 and electronic-cash issuer scripts.

How this works
--------------
The bank's keys stay in its :class:`~cardperso.keystore.base.KeyStore` (a software file for
tests, an HSM in production): the host names them and asks the store to *use* them, so the
card master keys (EMV option A from the issuer master keys, PAN and PSN) and the session keys
never leave the store. The session keys follow the CVN of the card's 9F10 when the request
carries it (PBOC's CVN 01: ``TDES(MK)[00×6 ‖ ATC] ‖ TDES(MK)[00×6 ‖ ATC⊕FFFF]``), else
:attr:`HostKeys.session` (PBOC's by default, the EMV common session key as an option).

* :meth:`AuthRequest.from_card` builds the cryptogram input from the card's data objects with
  :func:`cardperso.layouts.pboc_ac.ac_input`, the function the virtual card MACs with (PBOC:
  minimum data set ‖ AIP ‖ ATC ‖ CVR).
* :meth:`IssuerHost.verify` recomputes the ARQC over that input and raises
  :class:`~cardperso.errors.CryptogramMismatch` when it does not verify.
* :meth:`IssuerHost.arpc` answers with ARPC method 1, ``TDES(SK-AC)[ARQC ⊕ (ARC ‖ 00×6)]``.
* :meth:`IssuerHost.put_data_script` builds ``04 DA 9F tt 0A ‖ value(n12) ‖ MAC(4)`` with the MAC
  under the SMI session key over ``header ‖ Lc ‖ ATC ‖ ARQC ‖ value``
  (:func:`cardperso.crypto.emv.issuer_script_mac_input`; pboc-financial.md).
* :meth:`IssuerHost.authorize_load` is the whole online decision for an electronic-cash load:
  the ARQC must verify; the balance it starts from is the one **the card authenticated** in
  9F10 (EC balance ‖ MAC under the SMI session key), checked here, never a 9F79 the terminal
  read (a tampered terminal gains nothing); the new balance must stay within the balance limit
  the issuer knows - its own record of the card's 9F77 when the caller has one, else
  :attr:`HostKeys.max_ec_balance`, never a 9F77 the terminal read - (else :class:`LoadRefused`,
  and no script is produced; the card itself refuses a script past its own 9F77); then ARPC and
  the PUT DATA 9F79 script. A request without the card's 9F10 falls back to the terminal's balance only while
  :attr:`HostKeys.require_card_balance` is off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.chip.pboc_flows import dol_values
from cardperso.codec import tlv
from cardperso.codec.numbers import mask_id as mask_pan  # the one masking rule
from cardperso.crypto import emv
from cardperso.crypto import primitives as cp
from cardperso.errors import DataError, DecodeError, MacMismatch, UsageError
from cardperso.keystore.base import KeyStore, SessionKeyMethod
from cardperso.layouts import pboc_ac

__all__ = [
    "ARC_APPROVED",
    "ARC_DECLINED",
    "EC_TAGS",
    "AuthRequest",
    "AuthResponse",
    "HostKeys",
    "IssuerHost",
    "LoadRefused",
    "n12",
]

#: Authorisation response codes (EMV tag 8A, two ASCII characters): "00" approved, "51" declined.
ARC_APPROVED = b"00"
ARC_DECLINED = b"51"

#: Electronic-cash data objects an issuer script may set (pboc-financial.md).
EC_TAGS: dict[str, int] = {
    "balance": 0x9F79,
    "balance_limit": 0x9F77,
    "single_limit": 0x9F78,
    "reset_threshold": 0x9F6D,
}

#: Largest n12 amount (fen).
MAX_N12 = 999_999_999_999


class LoadRefused(DataError):
    """The host refuses an electronic-cash load (it would pass the balance limit, ...)."""


def n12(amount: int, what: str = "amount") -> bytes:
    """An amount in fen as n12 (6 bytes BCD)."""
    if not 0 <= amount <= MAX_N12:
        raise DataError("must be 0..999999999999 fen", field=what)
    return bytes.fromhex(f"{amount:012d}")


@dataclass(frozen=True, slots=True)
class HostKeys:
    """Names of the issuer master keys in the bank's store, and the session-key method."""

    imk_ac: str = "pboc-imk-ac"
    imk_smi: str = "pboc-imk-smi"
    #: for requests without the card's 9F10: ``"pboc"`` (PBOC CVN 01) or ``"common"`` (EMV)
    session: SessionKeyMethod = "pboc"
    #: refuse an e-cash load whose request lacks the balance the card authenticated in 9F10
    #: (on by default: the terminal's 9F79 is trusted only where this is turned off)
    require_card_balance: bool = True
    #: the highest e-cash balance the issuer allows on a card, the load ceiling when the caller
    #: has no record of the card's own 9F77 (fen; the People's Bank of China caps the domestic
    #: e-cash balance limit at 1000 yuan - "EMVTag系列12", www.shuzhiduo.com/A/x9J2ZEyWJ6 - and
    #: so do the shipped profiles' ec.max_balance_limit)
    max_ec_balance: int = 100_000


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What the terminal sends the host for one online transaction (an authorisation request).

    ``data`` is the cryptogram input exactly as the card MACed it (:meth:`from_card` builds it
    from the card's data objects); ``iad`` the card's 9F10 (its CVN picks the session key, its
    EC part carries the authenticated balance), empty when the terminal did not forward it.
    """

    pan: str = field(repr=False)
    psn: str
    atc: bytes
    arqc: bytes
    data: bytes = field(repr=False)
    iad: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if len(self.atc) != 2 or len(self.arqc) != 8:
            raise UsageError("an authorisation request needs a 2-byte ATC and an 8-byte ARQC")

    @classmethod
    def from_card(
        cls,
        pan: str,
        psn: str,
        *,
        atc: bytes,
        arqc: bytes,
        iad: bytes,
        aip: bytes,
        cdol: bytes,
        cdol_data: bytes,
    ) -> AuthRequest:
        """The request from what the card gave the terminal: ATC, ARQC and 9F10 of GENERATE
        AC, the AIP, and the CDOL1 with the data the terminal sent for it; the cryptogram
        input is :func:`cardperso.layouts.pboc_ac.ac_input` of these."""
        try:
            dol = tlv.parse_dol(cdol)
        except DecodeError:
            raise DataError("the CDOL1 is not a data object list", field="8C") from None
        if sum(n for _, n in dol) != len(cdol_data):
            raise DataError("the CDOL1 data do not match the CDOL1", field="8C")
        values = dol_values(cdol, cdol_data)
        data = pboc_ac.ac_input(iad, values, cdol_data, aip, atc)
        return cls(pan, psn, atc, arqc, data, iad)

    @property
    def card(self) -> tuple[str, str]:
        return (self.pan, self.psn)

    @property
    def pan_masked(self) -> str:
        return mask_pan(self.pan)


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """The host's answer: ARC, ARPC (method 1) and the issuer scripts to send after it."""

    arc: bytes
    arpc: bytes
    scripts: tuple[bytes, ...] = ()

    @property
    def approved(self) -> bool:
        return self.arc == ARC_APPROVED

    @property
    def external_authenticate_data(self) -> bytes:
        """The 10 data bytes of EXTERNAL AUTHENTICATE: ARPC ‖ ARC."""
        return self.arpc + self.arc


class IssuerHost:
    """The bank's issuer host over a key store (see the module docstring)."""

    def __init__(self, store: KeyStore, keys: HostKeys | None = None) -> None:
        self.store = store
        self.keys = keys or HostKeys()

    def session(self, req: AuthRequest) -> SessionKeyMethod:
        """The session-key method: by the CVN of the card's 9F10, else :attr:`HostKeys.session`."""
        if not req.iad:
            return self.keys.session
        return "pboc" if pboc_ac.session_method(req.iad) == "pboc" else "common"

    def verify(self, req: AuthRequest) -> None:
        """Raise :class:`~cardperso.errors.CryptogramMismatch` unless the ARQC verifies."""
        self.store.verify_arqc(
            self.keys.imk_ac, req.card, req.atc, req.data, req.arqc, session=self.session(req)
        )

    def arpc(self, req: AuthRequest, arc: bytes = ARC_APPROVED) -> bytes:
        """ARPC method 1 for ``arc`` (2 bytes)."""
        return self.store.make_arpc(
            self.keys.imk_ac, req.card, req.atc, req.arqc, arc=arc, session=self.session(req)
        )

    def script_mac(self, req: AuthRequest, header: bytes, value: bytes) -> bytes:
        """The 4-byte MAC of an issuer-script command ``header ‖ Lc ‖ value ‖ MAC``."""
        mac_input = emv.issuer_script_mac_input(header, req.atc, req.arqc, value)
        return self.store.script_mac(
            self.keys.imk_smi, req.card, req.atc, mac_input, session=self.session(req)
        )[:4]

    def card_balance(self, req: AuthRequest) -> int | None:
        """The EC balance the card authenticated in its 9F10 (MAC checked under the card's SMI
        session key), or ``None`` when the request carries no such 9F10. A balance whose MAC
        does not verify raises :class:`~cardperso.errors.MacMismatch`."""
        if not req.iad:
            return None
        try:
            idd = pboc_ac.ec_idd_balance(req.iad)
        except DecodeError:
            raise LoadRefused("the card's 9F10 is not PBOC's layout", field="9F10") from None
        if idd is None:
            return None
        balance5 = bytes.fromhex(f"{idd.balance:010d}")
        mac_input = pboc_ac.idd_mac_input(req.atc, balance5)
        expected = self.store.script_mac(
            self.keys.imk_smi, req.card, req.atc, mac_input, session=self.session(req)
        )[:4]
        if not cp.equal(expected, idd.mac):
            raise MacMismatch("the EC balance in 9F10 does not verify under the card's key")
        return idd.balance

    def put_data_script(self, req: AuthRequest, tag: int, amount: int) -> bytes:
        """Issuer script ``04 DA 9F tt 0A ‖ n12(amount) ‖ MAC`` setting EC object ``tag``."""
        if tag not in EC_TAGS.values():
            raise UsageError(f"tag {tag:04X} is not an electronic-cash object")
        header = bytes((0x04, 0xDA, tag >> 8, tag & 0xFF))
        value = n12(amount, f"{tag:04X}")
        return header + bytes((len(value) + 4,)) + value + self.script_mac(req, header, value)

    def authorize(self, req: AuthRequest) -> AuthResponse:
        """Verify the ARQC and approve (no scripts): the quality-control check of a card."""
        self.verify(req)
        return AuthResponse(ARC_APPROVED, self.arpc(req, ARC_APPROVED))

    def authorize_load(
        self, req: AuthRequest, *, balance: int | None = None, limit: int | None = None,
        amount: int,
    ) -> AuthResponse:  # fmt: skip
        """Online electronic-cash load: verify the ARQC, take the balance the card authenticated
        in 9F10 (``balance``, what the terminal read, is used only for a request without it and
        only while :attr:`HostKeys.require_card_balance` is off), refuse a load past the
        balance limit - ``limit``, the issuer's own record of the card's 9F77, else
        :attr:`HostKeys.max_ec_balance`; never a 9F77 a terminal read -, then ARPC (approved)
        and the script ``PUT DATA 9F79 = balance + amount``."""
        if amount <= 0:
            raise LoadRefused("a load needs a positive amount", field="amount")
        self.verify(req)
        card_balance = self.card_balance(req)
        if card_balance is not None:
            balance = card_balance
        elif self.keys.require_card_balance or balance is None:
            raise LoadRefused(
                "the request lacks the balance the card authenticated (9F10)", field="9F10"
            )
        new_balance = balance + amount
        if limit is None:
            limit = self.keys.max_ec_balance
        if new_balance > limit:
            raise LoadRefused(
                f"balance {balance} + load {amount} would pass the balance limit {limit} (fen)",
                field="amount",
            )
        script = self.put_data_script(req, EC_TAGS["balance"], new_balance)
        return AuthResponse(ARC_APPROVED, self.arpc(req, ARC_APPROVED), (script,))

    def authorize_update(self, req: AuthRequest, values: dict[str, int]) -> AuthResponse:
        """Verify the ARQC and return scripts setting the EC objects in ``values`` (names of
        :data:`EC_TAGS`, amounts in fen), e.g. a new balance limit."""
        self.verify(req)
        scripts = tuple(self.put_data_script(req, EC_TAGS[k], v) for k, v in values.items())
        return AuthResponse(ARC_APPROVED, self.arpc(req, ARC_APPROVED), scripts)
