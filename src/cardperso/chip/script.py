"""The personalization of a GlobalPlatform chip, sans-IO: a flow that yields command APDUs and
is sent the card's responses. It never touches a reader; a station drives it over its
transport with :func:`cardperso.chip.transport.drive`.

The steps: SELECT the issuer security domain → GET DATA CPLC (chip serial) → open the secure
channel with the card vendor's transport keys (INITIALIZE UPDATE / EXTERNAL AUTHENTICATE; a
bad card cryptogram fails at once and is never retried) → PUT KEY of the per-card keys
diversified from the KMC over the key set the card opened the session with → per application
INSTALL [for install and make selectable], INSTALL [for personalization] and STORE DATA
(secret DGIs are unwrapped from the transport KEK and immediately encrypted under the session
DEK inside :func:`_secret_items`) → card life-cycle to SECURED → read-back verification
(:mod:`cardperso.chip.verify`).

Every failure leaves as :class:`~cardperso.chip.model.ChipFailure` naming the step (a card
that refuses the keys has ``auth_failure`` set): the station rejects the card.
"""

from __future__ import annotations

from collections.abc import Generator

from cardperso.chip import gp
from cardperso.chip.model import CardApp, CardData, ChipFailure, ChipPlan, ChipResult
from cardperso.chip.transport import ApduCount, Flow
from cardperso.chip.verify import verify_pboc, verify_ssse
from cardperso.codec.fields import card_id_tail
from cardperso.crypto.gp import StaticKeys
from cardperso.crypto.primitives import unpad_method2
from cardperso.errors import CardError, CryptogramMismatch
from cardperso.keystore.base import KeyStore
from cardperso.keystore.pool import PART_DGIS
from cardperso.protocol.storedata import DgiItem, PaddingRule, StoreDataConventions

__all__ = [
    "Steps",
    "card_id_with_serial",
    "check_atr",
    "gp_keys",
    "personalize",
    "unwrap_secret",
]

#: Natural plaintext length of secret DGIs (wrapping under an AES KEK pads shorter ones).
SECRET_LENGTH = {0x8000: 48, 0x8010: 8, 0x8F10: 8} | {0x8F00 + k: 16 for k in range(1, 16)}

#: The ICC private key's CRT parts (8201-8205): ``80``-padded under the transport KEK (the
#: pool's KEK block), sent ``80``-padded to the session DEK's block (8 under SCP02, 16 under
#: SCP03): the card strips exactly one padding (pboc-conformance.md section 4).
PAD80_DGIS: dict[int, PaddingRule] = dict.fromkeys(PART_DGIS, "pad80")

Steps = Generator[bytes, bytes, ChipResult]


def check_atr(atr: bytes, plan: ChipPlan) -> None:
    """Refuse a card whose ATR does not start with the profile's prefix."""
    if plan.atr_prefix and not atr.startswith(plan.atr_prefix):
        raise ChipFailure(
            "ATR", f"unsupported card: ATR {atr.hex().upper()} does not match the profile"
        )


def card_id_with_serial(card_id: bytes, serial: bytes, tail: str) -> bytes:
    """Complete the card identification code at the station: with the profile's ``tail``
    ``chip-serial`` bytes 9-12 become the chip serial (CPLC IC serial number read over the line)
    and 13-16 stay FF; with ``ffffffff`` the prepared code is kept (codec.fields.card_id_tail)."""
    if len(serial) != 4:
        raise ChipFailure("chip serial", f"is {len(serial)} bytes, the card id needs 4")
    return card_id[:8] + card_id_tail(serial, tail)


def _ssse_record_with_serial(value: bytes, serial: bytes, tail: str) -> bytes:
    # DGI 0501 holds the simple TLV record `01 10 <card id>`
    return value[:2] + card_id_with_serial(value[2:18], serial, tail)


def _packages(aid: bytes) -> tuple[bytes, bytes]:
    """Load file and module AIDs of the virtual card's packages (docs/card-dgi-map.md)."""
    if aid.startswith(bytes.fromhex("A000000333")):
        return bytes.fromhex("A0000003330101"), bytes.fromhex("A000000333010101")
    return bytes.fromhex("D156000005FF01"), bytes.fromhex("D156000005FF0101")


def unwrap_secret(keys: KeyStore, kek: str, dgi: int, value: bytes) -> bytes:
    """A secret DGI's value in clear (wrapped under the transport ``kek``; a value longer than
    its natural length was padded to the KEK's block, :data:`SECRET_LENGTH`; a CRT part of
    :data:`PAD80_DGIS` without its ``80`` padding)."""
    if dgi in PAD80_DGIS:
        return unpad_method2(keys.unwrap(kek, value))
    natural = SECRET_LENGTH.get(dgi)
    return keys.unwrap(kek, value, pad=natural is not None and len(value) != natural)


def _secret_items(
    app: CardApp, keys: KeyStore, kek: str, serial: bytes, plan: ChipPlan
) -> list[DgiItem]:
    items = []
    for dgi, value in app.dgis:
        if dgi in app.secret:
            items.append(DgiItem(dgi, unwrap_secret(keys, kek, dgi, value), True))
        elif dgi == 0x0501 and len(value) == 18:
            items.append(
                DgiItem(dgi, _ssse_record_with_serial(value, serial, plan.card_id_check), False)
            )
        else:
            items.append(DgiItem(dgi, value, False))
    return items


def gp_keys(keys: KeyStore, plan: ChipPlan, kdd: bytes, *, transport: bool = True) -> StaticKeys:
    """The card's static GP keys (ENC, MAC, DEK) from the product's master: the transport
    KMC and its diversification, or with ``transport=False`` the issuer's own (after PUT KEY)."""
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


def personalize(card: CardData, plan: ChipPlan, keys: KeyStore) -> Steps:
    """The chip steps of one card (see the module docstring)."""
    count = ApduCount()
    try:
        serial, card_id, arqc_ok, checks = yield from count(_steps(card, plan, keys))
    except CryptogramMismatch:
        raise ChipFailure(
            "INITIALIZE UPDATE",
            "card cryptogram does not verify: wrong KMC or diversification",
            auth_failure=True,
        ) from None
    except CardError as exc:
        if exc.command == "EXTERNAL AUTHENTICATE":
            raise ChipFailure(
                "EXTERNAL AUTHENTICATE", "card refused the host cryptogram", auth_failure=True
            ) from None
        raise ChipFailure(exc.command, f"card answered {exc.sw:04X} ({exc.meaning})") from None
    return ChipResult(serial, card_id, arqc_ok, count.n, checks)


def _steps(
    card: CardData, plan: ChipPlan, keys: KeyStore
) -> Flow[tuple[bytes, bytes, bool, tuple[str, ...]]]:
    serial = yield from gp.read_serial()
    session = yield from gp.open_channel(
        lambda kdd: gp_keys(keys, plan, kdd),
        scp=plan.scp,
        i=plan.i,
        kvn=plan.kvn,
        security_level=plan.security_level,
    )
    if plan.put_key:
        new_keys = gp_keys(keys, plan, session.kdd, transport=False)
        yield from session.put_key(new_keys, plan.new_kvn)
        del new_keys

    conv = StoreDataConventions(
        max_data=plan.max_data, dgi_format=plan.dgi_format, block_size=16 if plan.scp == "03" else 8,
        padding_overrides=PAD80_DGIS,
    )  # fmt: skip
    expected: dict[bytes, dict[int, bytes]] = {}
    for app in card.apps:
        load_file, module = _packages(app.aid)
        install = gp.install_command(0x0C, load_file, module, app.aid, b"\x00")
        yield from session.send(install, f"INSTALL {app.name}")
        yield from session.send(
            gp.install_for_perso(app.aid), f"INSTALL for personalization {app.name}"
        )
        items = _secret_items(app, keys, plan.kek, serial, plan)
        if plan.store_data_order == "encrypted-first":
            items.sort(key=lambda item: not item.encrypted)  # stable: order kept within each kind
        expected[app.aid] = {i.dgi: i.data for i in items if not i.encrypted}
        yield from session.store_data(items, conv, f"STORE DATA {app.name}")
        del items  # clear secrets leave scope with the DEK-encrypted commands
    if plan.secure_card:
        yield from session.send(gp.set_status(0x07), "SET STATUS INITIALIZED")
        yield from session.send(gp.set_status(0x0F), "SET STATUS SECURED")
    session.close()

    checks: list[str] = []
    card_id = b""
    arqc_ok = False
    for app in card.apps:
        dgis = expected[app.aid]
        if app.aid == plan.ssse_aid:
            card_id = dgis.get(0x0501, b"\x00\x00")[2:]
            yield from verify_ssse(app, dgis, plan, keys, checks)
        else:
            arqc_ok = yield from verify_pboc(card, app, dgis, plan, keys, checks)
    return serial, card_id, arqc_ok, tuple(checks)
