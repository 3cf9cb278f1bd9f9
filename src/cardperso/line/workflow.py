"""The per-card chip workflow, sans-IO: a generator that yields command APDUs and is sent the
card's responses. It never touches a reader; a station drives it over its transport.

How this works
--------------
``personalize(card, plan, keys)`` is a generator. The driver does::

    gen = personalize(card, plan, keys)
    apdu = next(gen)
    while True:
        try:
            apdu = gen.send(transport.transmit(apdu))
        except StopIteration as done:
            result = done.value
            break

The steps: SELECT the issuer security domain → GET DATA CPLC (chip serial) → open the secure
channel with the card's keys diversified from the KMC (INITIALIZE UPDATE / EXTERNAL
AUTHENTICATE; a bad card cryptogram raises :class:`~cardperso.errors.CryptogramMismatch` at
once and is never retried) → per application INSTALL [for install and make selectable],
INSTALL [for personalization] and STORE DATA (secret DGIs are unwrapped from the transport
KEK and immediately encrypted under the session DEK inside :func:`_secret_items`) → card
life-cycle to SECURED → read-back verification: the SSSE records read back (after internal and
external authentication with the card's read key on 3rd-generation cards) must equal the
personalized bytes; the PBOC application must answer GPO and READ RECORD with the personalized
records and, where asked, a GENERATE AC whose ARQC verifies with the issuer master key.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU, ResponseAPDU
from cardperso.codec.dgi import parse_dgis
from cardperso.codec.status import describe
from cardperso.crypto import ecb_encrypt, equal, kcv, random_bytes
from cardperso.crypto.gp import StaticKeys
from cardperso.crypto.ssse import diversify_one
from cardperso.errors import CardError, CardPersoError, CryptogramMismatch, SecurityError
from cardperso.keystore.base import KeyStore
from cardperso.layouts.gp import CPLC
from cardperso.protocol.scp02 import Scp02Host
from cardperso.protocol.scp03 import Scp03Host
from cardperso.protocol.storedata import DgiItem, StoreDataConventions, build_store_data

ISD_AID = bytes.fromhex("A000000151000000")
SSSE_FILES = {5: 0x05, 6: 0x06, 0xD: 0x0D}  # DGI high byte → SFI
#: Natural plaintext length of secret DGIs (wrapping under an AES KEK pads shorter ones).
SECRET_LENGTH = {0x8000: 48, 0x8010: 8, 0x8F10: 8} | {0x8F00 + k: 16 for k in range(1, 16)}

Steps = Generator[bytes, bytes, "ChipResult"]
Send = Callable[[bytes], Generator[bytes, bytes, bytes]]


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
    card_id_check: str = "crc32"
    ssse_aid: bytes = b""
    ssse_algorithm: str = "SM4"
    ssse_generation: int = 3
    ssse_read_key: int = 0x0A
    ssse_irk: int = 0x01
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


def _ok(raw: bytes, step: str) -> bytes:
    resp = ResponseAPDU.parse(raw)
    if resp.sw != 0x9000:
        raise ChipFailure(step, f"card answered {resp.sw:04X} ({describe(resp.sw)})")
    return resp.data


def check_atr(atr: bytes, plan: ChipPlan) -> None:
    """Refuse a card whose ATR does not start with the profile's prefix."""
    if plan.atr_prefix and not atr.startswith(plan.atr_prefix):
        raise ChipFailure(
            "ATR", f"unsupported card: ATR {atr.hex().upper()} does not match the profile"
        )


def card_id_with_serial(card_id: bytes, serial: bytes, check: str) -> bytes:
    """Put the chip serial into bytes 9-12 of the card identification code and recompute the
    profile's check value over the first 12 bytes (``crc32``) or leave it zero."""
    head = card_id[:8] + serial
    tail = zlib.crc32(head).to_bytes(4, "big") if check == "crc32" else bytes(4)
    return head + tail


def _ssse_record_with_serial(value: bytes, serial: bytes, check: str) -> bytes:
    # DGI 0501 holds the simple TLV record `01 10 <card id>`
    return value[:2] + card_id_with_serial(value[2:18], serial, check)


def _install_selectable(aid: bytes) -> bytes:
    load_file, module = _packages(aid)
    data = (
        bytes([len(load_file)]) + load_file + bytes([len(module)]) + module + bytes([len(aid)]) + aid
        + b"\x01\x00" + b"\x02\xc9\x00" + b"\x00"
    )  # fmt: skip
    return CommandAPDU(0x80, 0xE6, 0x0C, 0x00, data, le=256).to_bytes()


def _packages(aid: bytes) -> tuple[bytes, bytes]:
    """Load file and module AIDs of the virtual card's packages (docs/card-dgi-map.md)."""
    if aid.startswith(bytes.fromhex("A000000333")):
        return bytes.fromhex("A0000003330101"), bytes.fromhex("A000000333010101")
    return bytes.fromhex("D156000005FF01"), bytes.fromhex("D156000005FF0101")


def _install_for_perso(aid: bytes) -> bytes:
    data = b"\x00\x00" + bytes([len(aid)]) + aid + b"\x00\x00\x00"
    return CommandAPDU(0x80, 0xE6, 0x20, 0x00, data).to_bytes()


def _secret_items(
    app: CardApp, keys: KeyStore, kek: str, serial: bytes, plan: ChipPlan
) -> list[DgiItem]:
    items = []
    for dgi, value in app.dgis:
        if dgi in app.secret:
            natural = SECRET_LENGTH.get(dgi)
            plain = keys.unwrap(kek, value, pad=natural is not None and len(value) != natural)
            items.append(DgiItem(dgi, plain, True))
        elif dgi == 0x0501 and len(value) == 18:
            items.append(
                DgiItem(dgi, _ssse_record_with_serial(value, serial, plan.card_id_check), False)
            )
        else:
            items.append(DgiItem(dgi, value, False))
    return items


def _gp_keys(keys: KeyStore, plan: ChipPlan, kdd: bytes, *, transport: bool = True) -> StaticKeys:
    kmc, method = (
        (plan.transport_kmc, plan.transport_diversification)
        if transport
        else (plan.kmc, plan.diversification)
    )
    card = keys.diversify_gp(kmc, [kdd], method, wrap_under=None)[0]
    algorithm = "AES" if plan.scp == "03" else "3DES"
    return StaticKeys(
        card.enc.secret().value, card.mac.secret().value, card.dek.secret().value, algorithm
    )


def _put_key_command(new: StaticKeys, plan: ChipPlan, encrypt: Callable[[bytes], bytes]) -> bytes:
    """PUT KEY (GP 2.3 §11.8) replacing the transport key set by ``new`` (DEK-encrypted keys
    with their check values)."""
    data = bytearray([plan.new_kvn])
    for key in (new.enc, new.mac, new.dek):
        if plan.scp == "03":
            data += b"\x88\x11\x10" + encrypt(key)
        else:
            data += b"\x80\x10" + encrypt(key)
        data += b"\x03" + kcv(new.algorithm, key)
    return CommandAPDU(0x80, 0xD8, 0xFF, 0x81, bytes(data), le=256).to_bytes()


def personalize(card: CardData, plan: ChipPlan, keys: KeyStore) -> Steps:
    """The chip steps of one card (see the module docstring)."""
    sent = 0

    def send(apdu: bytes) -> Generator[bytes, bytes, bytes]:
        nonlocal sent
        sent += 1
        return (yield apdu)

    _ok(
        (yield from send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, ISD_AID, le=256).to_bytes())),
        "SELECT ISD",
    )
    raw_cplc = _ok(
        (yield from send(CommandAPDU(0x80, 0xCA, 0x9F, 0x7F, le=256).to_bytes())), "GET DATA CPLC"
    )
    if raw_cplc[:2] == b"\x9f\x7f":
        raw_cplc = raw_cplc[3:]
    serial = CPLC.decode(raw_cplc).ic_serial_number

    host: Scp02Host | Scp03Host
    if plan.scp == "03":
        host = Scp03Host(lambda kdd: _gp_keys(keys, plan, kdd), plan.security_level, kvn=plan.kvn)
    else:
        host = Scp02Host(
            lambda kdd: _gp_keys(keys, plan, kdd), plan.security_level, plan.i, plan.kvn
        )
    iu_resp = yield from send(host.initialize_update())
    if ResponseAPDU.parse(iu_resp).sw != 0x9000:
        raise ChipFailure(
            "INITIALIZE UPDATE", f"card answered {ResponseAPDU.parse(iu_resp).sw:04X}"
        )
    try:
        ext_auth = host.process_initialize_update_response(iu_resp)
    except CryptogramMismatch:
        raise ChipFailure(
            "INITIALIZE UPDATE",
            "card cryptogram does not verify: wrong KMC or diversification",
            auth_failure=True,
        ) from None
    ea_resp = yield from send(ext_auth)
    if ResponseAPDU.parse(ea_resp).sw != 0x9000:
        raise ChipFailure(
            "EXTERNAL AUTHENTICATE", "card refused the host cryptogram", auth_failure=True
        )
    host.process_external_authenticate_response(ea_resp)

    def secured(apdu: bytes, step: str) -> Generator[bytes, bytes, bytes]:
        raw = yield from send(host.wrap(apdu))
        return _ok(host.unwrap(raw), step)

    if plan.put_key:
        kdd = host.session.kdd if host.session is not None else b""
        new_keys = _gp_keys(keys, plan, kdd, transport=False)
        yield from secured(_put_key_command(new_keys, plan, host.encrypt_dgi_data), "PUT KEY")
        del new_keys

    conv = StoreDataConventions(
        max_data=plan.max_data, dgi_format=plan.dgi_format, block_size=16 if plan.scp == "03" else 8
    )
    expected: dict[bytes, dict[int, bytes]] = {}
    for app in card.apps:
        yield from secured(_install_selectable(app.aid), f"INSTALL {app.name}")
        yield from secured(_install_for_perso(app.aid), f"INSTALL for personalization {app.name}")
        items = _secret_items(app, keys, plan.kek, serial, plan)
        if plan.store_data_order == "encrypted-first":
            items.sort(key=lambda item: not item.encrypted)  # stable: order kept within each kind
        expected[app.aid] = {i.dgi: i.data for i in items if not i.encrypted}
        for n, cmd in enumerate(build_store_data(items, conv, host.encrypt_dgi_data)):
            yield from secured(cmd, f"STORE DATA {app.name} #{n}")
        del items  # clear secrets leave scope with the DEK-encrypted commands
    if plan.secure_card:
        yield from secured(CommandAPDU(0x80, 0xF0, 0x80, 0x07).to_bytes(), "SET STATUS INITIALIZED")
        yield from secured(CommandAPDU(0x80, 0xF0, 0x80, 0x0F).to_bytes(), "SET STATUS SECURED")
    host.close()

    checks: list[str] = []
    card_id = b""
    arqc_ok = False
    for app in card.apps:
        dgis = expected[app.aid]
        if app.aid == plan.ssse_aid:
            card_id = dgis.get(0x0501, b"\x00\x00")[2:]
            yield from _verify_ssse(app, dgis, plan, keys, send, checks)
        else:
            arqc_ok = yield from _verify_pboc(card, app, dgis, plan, keys, send, checks)
    return ChipResult(serial, card_id, arqc_ok, sent, tuple(checks))


def _verify_ssse(
    app: CardApp,
    dgis: dict[int, bytes],
    plan: ChipPlan,
    keys: KeyStore,
    send: Send,
    checks: list[str],
) -> Generator[bytes, bytes, None]:
    """Read back every personalized SSSE record and compare it byte for byte."""
    _ok(
        (yield from send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, app.aid, le=256).to_bytes())),
        "SELECT SSSE",
    )
    if plan.ssse_generation >= 3:
        secrets = dict(_wrapped(app))
        irk = _unwrap16(keys, plan.kek, secrets.get(0x8F00 + plan.ssse_irk))
        rk = _unwrap16(keys, plan.kek, secrets.get(0x8F00 + plan.ssse_read_key))
        factor, rnd = random_bytes(8), random_bytes(8)
        answer = _ok(
            (
                yield from send(
                    CommandAPDU(0x00, 0x88, 0x00, plan.ssse_irk, factor + rnd, le=256).to_bytes()
                )
            ),
            "SSSE INTERNAL AUTHENTICATE",
        )
        k_d = diversify_one(irk, plan.ssse_algorithm, factor)
        if not equal(answer[:16], ecb_encrypt(plan.ssse_algorithm, k_d, rnd + bytes(8))):
            raise ChipFailure(
                "SSSE INTERNAL AUTHENTICATE", "the card's answer does not verify (wrong IRK)"
            )
        challenge = _ok(
            (yield from send(CommandAPDU(0x00, 0x84, 0x00, 0x00, le=8).to_bytes())), "GET CHALLENGE"
        )
        block = (challenge + bytes(16))[:16]
        cryptogram = ecb_encrypt(plan.ssse_algorithm, rk, block)
        _ok(
            (
                yield from send(
                    CommandAPDU(0x00, 0x82, 0x00, plan.ssse_read_key, cryptogram).to_bytes()
                )
            ),
            "SSSE EXTERNAL AUTHENTICATE",
        )
    for dgi, value in sorted(dgis.items()):
        sfi = SSSE_FILES.get(dgi >> 8)
        if sfi is None or not 1 <= (dgi & 0xFF) <= 0x20:
            continue
        got = _ok(
            (
                yield from send(
                    CommandAPDU(0x00, 0xB2, dgi & 0xFF, (sfi << 3) | 4, le=256).to_bytes()
                )
            ),
            f"READ RECORD SFI {sfi:02X} rec {dgi & 0xFF}",
        )
        if got != value:
            raise ChipFailure(
                "SSSE read-back",
                f"SFI {sfi:02X} record {dgi & 0xFF} differs from the personalized bytes",
            )
    checks.append("ssse-records")


def _wrapped(app: CardApp) -> Iterable[tuple[int, bytes]]:
    return ((d, v) for d, v in app.dgis if d in app.secret)


def _unwrap16(keys: KeyStore, kek: str, wrapped: bytes | None) -> bytes:
    if wrapped is None:
        raise ChipFailure("SSSE read-back", "the perso record has no key for card authentication")
    return keys.unwrap(kek, wrapped)[:16]


def _verify_pboc(
    card: CardData,
    app: CardApp,
    dgis: dict[int, bytes],
    plan: ChipPlan,
    keys: KeyStore,
    send: Send,
    checks: list[str],
) -> Generator[bytes, bytes, bool]:
    """GPO, READ RECORD of every AFL record, and a GENERATE AC whose ARQC must verify."""
    fci = _ok(
        (yield from send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, app.aid, le=256).to_bytes())),
        "SELECT PBOC",
    )
    pdol = tlv.find(tlv.parse(fci), 0x9F38)
    pdol_len = sum(length for _, length in tlv.parse_dol(pdol.value if pdol else b""))
    gpo_data = tlv.encode(0x83, bytes(pdol_len))
    gpo = _ok(
        (yield from send(CommandAPDU(0x80, 0xA8, 0x00, 0x00, gpo_data, le=256).to_bytes())), "GPO"
    )
    parsed = tlv.parse(gpo)
    aip_obj, afl_obj = tlv.find(parsed, 0x82), tlv.find(parsed, 0x94)
    if aip_obj is None or afl_obj is None:
        raise ChipFailure("GPO", "no AIP/AFL in the GPO response")
    afl = afl_obj.value
    cdol1 = b""
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        for rec in range(first, last + 1):
            got = _ok(
                (yield from send(CommandAPDU(0x00, 0xB2, rec, (sfi << 3) | 4, le=256).to_bytes())),
                f"READ RECORD SFI {sfi} rec {rec}",
            )
            want = dgis.get((sfi << 8) | rec)
            if want is not None and got != want:
                raise ChipFailure(
                    "PBOC read-back", f"SFI {sfi} record {rec} differs from the personalized bytes"
                )
            found = tlv.find(tlv.parse(got), 0x8C)
            if found is not None:
                cdol1 = found.value
    checks.append("pboc-records")
    if not plan.verify_ac or not plan.imk_ac:
        return False
    cdol_data = bytes(sum(length for _, length in tlv.parse_dol(cdol1)))
    ac = _ok(
        (yield from send(CommandAPDU(0x80, 0xAE, 0x80, 0x00, cdol_data, le=256).to_bytes())),
        "GENERATE AC",
    )
    fields = tlv.parse(ac)
    atc_obj, ac_obj, iad_obj = (
        tlv.find(fields, 0x9F36),
        tlv.find(fields, 0x9F26),
        tlv.find(fields, 0x9F10),
    )
    if atc_obj is None or ac_obj is None:
        raise ChipFailure("GENERATE AC", "no ATC or cryptogram in the answer")
    cvr = iad_obj.value[3:7] if iad_obj is not None and len(iad_obj.value) >= 7 else b""
    data = cdol_data + aip_obj.value + atc_obj.value + cvr
    try:
        keys.verify_arqc(plan.imk_ac, (card.pan, card.psn), atc_obj.value, data, ac_obj.value)
    except SecurityError:
        raise ChipFailure(
            "GENERATE AC", "ARQC does not verify with the issuer master key"
        ) from None
    checks.append("arqc")
    return True


def drive(steps: Steps, transmit: Callable[[bytes], bytes]) -> ChipResult:
    """Run a workflow over ``transmit(apdu) -> response`` (a station's transport)."""
    try:
        apdu = next(steps)
        while True:
            apdu = steps.send(transmit(apdu))
    except StopIteration as done:
        result: ChipResult = done.value
        return result


def records_of(dgis: bytes) -> tuple[tuple[int, bytes], ...]:
    """A perso-file DGI stream as (DGI, value) pairs."""
    return tuple(parse_dgis(dgis))


__all__ = [
    "CardApp",
    "CardData",
    "CardError",
    "ChipFailure",
    "ChipPlan",
    "ChipResult",
    "card_id_with_serial",
    "check_atr",
    "drive",
    "personalize",
    "records_of",
]
