"""Typed profile objects: what one card product is made of (frozen, slotted dataclasses).

A :class:`Profile` is loaded from ``profiles/NAME.yaml`` by :mod:`cardperso.profiles.loader`;
every field here has the same name as its YAML key. Byte values are ``bytes`` (hex in YAML).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Field formats of SSSE records: b (binary), an (ASCII, 00-padded), gbk (GBK text, 00-padded),
#: cn (BCD, F-padded), n (BCD, 0-padded on the left).
RecordFormat = Literal["b", "an", "gbk", "cn", "n"]

#: Derived sources an SSSE record may take besides input fields.
DERIVED_SOURCES = ("card_id", "name_head", "name_ext")


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """One simple-TLV record of an SSSE elementary file."""

    rec: int
    tag: int
    len: int
    fmt: RecordFormat
    src: str | None = None
    const: str | None = None


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    sfi: int
    records: tuple[RecordSpec, ...]


@dataclass(frozen=True, slots=True)
class SsseKeySpec:
    """A per-card SSSE key: card key ``id``, diversified from the store key ``master``."""

    id: int
    name: str
    master: str
    version: int = 1


@dataclass(frozen=True, slots=True)
class CardIdSpec:
    """Card identification code: region BCD(3) ‖ ``prefix`` (5) ‖ the 8-byte ``tail``:
    ``chip-serial`` = the chip serial (4, ``serial_placeholder`` until the station reads CPLC)
    ‖ FF×4; ``ffffffff`` = FF×8 (docs/card-dgi-map.md)."""

    prefix: bytes
    serial_placeholder: bytes
    tail: Literal["chip-serial", "ffffffff"]


@dataclass(frozen=True, slots=True)
class SsseSpec:
    df_name: bytes
    algorithm: Literal["SM4", "3DES"]
    algorithm_indicator: int
    card_id: CardIdSpec
    files: tuple[FileSpec, ...]
    key_factor: Literal["card_no_body"]
    keys: tuple[SsseKeySpec, ...]
    #: P2 of INTERNAL AUTHENTICATE: the IRK's key id (``key-id``) or ``zero`` (00, as public
    #: readers send it); native chips address keys by id whatever this says.
    internal_auth_p2: Literal["key-id", "zero"] = "key-id"


@dataclass(frozen=True, slots=True)
class EcSpec:
    """Electronic-cash settings and limits (amounts in fen)."""

    currency: str
    auth_code: str
    max_balance_limit: int
    max_single_limit: int
    max_reset_threshold: int
    default_balance: int
    default_limit: int
    default_single_limit: int
    default_reset_threshold: int


@dataclass(frozen=True, slots=True)
class TlvItem:
    tag: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ConstantDgi:
    """A DGI whose content is the same on every card: optional template tag around TLVs."""

    dgi: int
    template: int | None
    tlv: tuple[TlvItem, ...]


@dataclass(frozen=True, slots=True)
class OdaSpec:
    """Offline data authentication (``pboc.oda``, docs/card-dgi-map.md): the key chain of the
    key store (``cardperso.keystore.oda``) and the record DGIs its data go to."""

    #: 3 to 8 leading PAN digits every card of the product starts with (the issuer identifier
    #: of the issuer certificate 90).
    issuer_id: str
    #: Record DGI (SFI ‖ record) of ``8F 90 92 9F32`` (one per batch); not marked for ODA.
    issuer_dgi: int
    #: Record DGI of ``9F46 9F47 9F48 9F49`` (per card); not marked for ODA.
    cert_dgi: int
    #: Record DGI of ``93`` (SDA), ``None``: no signed static data.
    ssad_dgi: int | None = None
    #: The CA public key index (8F); the CA key pair is ``oda-ca-<RID of the AID>-<index>``.
    ca_index: int = 0xF1
    issuer_key: str = "oda-issuer"
    #: The issuer certificate's expiry (MMYY) and serial (3 bytes, hex).
    issuer_cert_expiry: str = "1249"
    issuer_cert_serial: str = "000001"
    #: The DDOL (9F49) the card names for INTERNAL AUTHENTICATE.
    ddol: bytes = b"\x9f\x37\x04"
    #: The data authentication code signed in 93.
    dac: bytes = b"\xda\xc1"
    #: ICC key size (the pool of that size is used).
    icc_bits: int = 1024


@dataclass(frozen=True, slots=True)
class PbocSpec:
    aid: bytes
    imk_ac: str
    imk_smi: str
    imk_smc: str
    derivation: Literal["emv-a"]
    service_code: str
    track2_discretionary: str
    latin_name_default: str
    extended_name_gbk: bool
    id_type: int
    app_version: bytes
    iad: bytes
    ec: EcSpec
    constant_dgis: tuple[ConstantDgi, ...]
    #: the cryptograms' session keys (pboc | emv-csk); the card picks them by 9F10's CVN
    session_key: str = "pboc"
    #: offline data authentication (``pboc.oda``); ``None``: the product has none
    oda: OdaSpec | None = None


@dataclass(frozen=True, slots=True)
class GpSpec:
    kmc: str
    diversification: str
    scp: Literal["02", "03"]
    i: int
    kvn: int
    #: The card vendor's transport key that opens the blank cards (never the issuer's ``kmc``)
    #: and its diversification (``none``: every blank carries the key itself).
    transport_kmc: str = "gp-transport"
    transport_diversification: str = "none"


@dataclass(frozen=True, slots=True)
class StoreDataSpec:
    """STORE DATA conventions (used by the encoding station)."""

    encrypted_dgis: tuple[int, ...]
    pad_encrypted: bool
    p1_dgi_format: int
    #: ``prepared``: DGIs in the perso file's order; ``encrypted-first``: each application's
    #: encrypted DGIs first (fewer STORE DATA commands: a command is all-encrypted or all-clear).
    order: str = "prepared"


@dataclass(frozen=True, slots=True)
class PinSpec:
    source: Literal["seeded", "input", "input-or-seeded"]
    length: int
    try_limit: int


@dataclass(frozen=True, slots=True)
class FaceField:
    name: str
    src: str


@dataclass(frozen=True, slots=True)
class MagStripeSpec:
    """Which ISO/IEC 7813 tracks to encode (data from :mod:`cardperso.codec.magstripe`: PAN,
    pinyin name, expiry YYMM, the PBOC service code and discretionary data)."""

    track1: bool
    track2: bool


@dataclass(frozen=True, slots=True)
class PkiSpec:
    """The PKI application (``pki`` section, docs/pki.md): the issuing CA that certifies the
    card's keys, the cardholder certificate's subject choices, the PIN's tries."""

    issuing_ca_key: str
    #: The issuing CA's certificate (PEM or DER), relative to the profile's directory.
    issuing_ca_certificate: str
    organization: str = "cardperso test PKI"
    organizational_unit: str = "social security card"
    country: str = "CN"
    mask_identity: bool = True
    validity_days: int = 3650
    pin_tries: int = 3
    #: Also the encryption pair: made by the issuer, sent in an SM2 key envelope.
    encryption_pair: bool = True
    #: The SM2 user ID the CA signs with: ``default`` (1234567812345678, GM/T 0009) or
    #: ``empty``, a test setting under which OpenSSL 3.0 checks whole chains and CRLs.
    ca_user_id: str = "default"
    #: Key-store name of the master the administrator PIN of each card is derived from
    #: (diversified by the card number's 8 body characters); empty: no administrator PIN.
    admin_pin_key: str = ""
    #: ``card``: the card generates its signing pair; ``import``: the issuer makes it and
    #: sends the private key under the secure channel (chips that cannot generate).
    signing_key: str = "card"
    #: With ``signing_key: import``: the SM2 key pool the pairs come from (a directory,
    #: relative to the profile's); empty: ``KEYSTORE.icc-pool/sm2`` beside a key-store file.
    key_pool: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """One card product (see ``docs/prep.md`` for every key)."""

    name: str
    title: str
    generation: int
    photo: Literal["required", "optional", "absent"]
    pin: PinSpec
    ssse: SsseSpec
    pboc: PbocSpec | None
    gp: GpSpec
    store_data: StoreDataSpec
    transport_kek: str
    card_face: tuple[FaceField, ...]
    mag_stripe: MagStripeSpec | None
    #: SHA-256 of the canonical JSON of the profile's data (comments and layout do not count).
    digest: bytes
    #: Where it was loaded from (for messages).
    source: str
    #: ``production: true``: runs of this product get the production guard (cli.production).
    production: bool = False
    #: ``photo_spec``: the rule photos meet at data preparation: ``card`` the social-security
    #: card photo specification (``cardperso.codec.photo``), ``none`` any whole JPEG.
    photo_spec: Literal["card", "none"] = "card"
    #: The PKI application (``pki``); ``None``: the product has none.
    pki: PkiSpec | None = None

    @property
    def needs_pan(self) -> bool:
        return self.pboc is not None

    def master_key_names(self) -> tuple[str, ...]:
        """Key-store names this profile uses, in a stable order."""
        names: list[str] = []
        if self.pboc is not None:
            names += [self.pboc.imk_ac, self.pboc.imk_smi, self.pboc.imk_smc]
        names += [k.master for k in self.ssse.keys]
        names.append(self.transport_kek)
        out: list[str] = []
        for n in names:
            if n not in out:
                out.append(n)
        return tuple(out)
