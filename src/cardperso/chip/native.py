"""The native-COS driver, sans-IO: personalize the SSSE on an FMCOS 2.0-style chip.

The steps (each command's status word checked; a refusal leaves as
:class:`~cardperso.chip.model.ChipFailure` naming the step, the station rejects the card and
the record is made again on a new one):

1. before any command: the chip's algorithm must be the product's SSSE algorithm, the record
   must hold no application but the SSSE, and the chip serial comes from the ATR;
2. SELECT the MF, GET CHALLENGE, EXTERNAL AUTHENTICATE with key 00, the card vendor's
   transport key: the store's ``transport_key.key`` diversified by the chip serial
   (:func:`transport_factor`, the SSSE diversification of :mod:`cardperso.crypto.ssse`); a
   refusal (63Cx) is an authentication failure and is never retried on that chip;
3. CREATE FILE of the SSSE DF (FID :data:`SSSE_FID`, the product's DF name), SELECT it, CREATE
   FILE of its key file and of EF05, EF06, EF0D (variable-length record files);
4. WRITE KEY of each SSSE key (DGIs 8F01-8F0F unwrapped from the transport KEK) and of the PIN
   (8F10, tries from 9F10), each ``84 D4`` enciphered and MAC'd under the transport key
   (:mod:`cardperso.protocol.fmcos`) after a fresh GET CHALLENGE;
5. UPDATE RECORD of every record (``04 DC``, MAC'd under the transport key), the card
   identification code with the chip serial as on GP chips;
6. END OF CREATION of the DF (``80 E0 00 01 00``): rights hold from now on;
7. read-back with the SSSE verifier a social-security terminal's reads
   (:func:`cardperso.chip.verify.verify_ssse`).

Rights and follow-up states written here (docs/card-dgi-map.md, native-COS section, all
[inferred]: the SSSE specification names keys, not FMCOS rights): the read key 0A sets state
2, the update keys 04/05 state 3, 0D state 4, the master key 0F state 5; EF05/EF06 are read in
states 2-F (third generation; always on second-generation cards) and written in state 3, EF0D
written in state 4.
"""

from __future__ import annotations

import dataclasses

from cardperso.chip.gp import ok
from cardperso.chip.model import CardApp, CardData, ChipFailure, ChipPlan, ChipResult
from cardperso.chip.script import Steps, card_id_with_serial, unwrap_secret
from cardperso.chip.transport import ApduCount, Flow
from cardperso.chip.verify import SSSE_FILES, verify_ssse
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import ecb_encrypt
from cardperso.errors import CardError
from cardperso.keystore.base import KeyStore
from cardperso.profiles.chips import ChipProfile
from cardperso.protocol import fmcos

__all__ = [
    "NATIVE_COMMANDS",
    "SSSE_FID",
    "personalize_native",
    "pin_from_block",
    "transport_factor",
]

#: What this driver sends (the chip profile must list them).
NATIVE_COMMANDS = frozenset(
    {
        "SELECT",
        "GET CHALLENGE",
        "EXTERNAL AUTHENTICATE",
        "INTERNAL AUTHENTICATE",
        "CREATE FILE",
        "WRITE KEY",
        "UPDATE RECORD",
        "READ RECORD",
        "END PERSONALIZATION",
    }
)
#: The SSSE DF's FID on native chips [inferred: the specification names the DF by name only].
SSSE_FID = 0xDDF1
#: Key id → (key type, follow-up state); others are external-authentication keys of state 1.
_KEYS = {0x01: (0x34, 0x01), 0x04: (0x39, 0x33), 0x05: (0x39, 0x33), 0x06: (0x38, 0xFF),
         0x0A: (0x39, 0x22), 0x0D: (0x39, 0x44), 0x0F: (0x39, 0x55)}  # fmt: skip
#: SFI → write right (the state its update key sets).
_WRITE_RIGHT = {0x05: 0x33, 0x06: 0x33, 0x0D: 0x44}
_ALGORITHM_ID = {"SM4": 0x04, "3DES": 0x00}  # key algorithm identifier [inferred]


def transport_factor(serial: bytes) -> bytes:
    """The 8-byte diversification factor of a chip's transport key: ``00×4 ‖ serial``
    (cardperso's virtual vendor scheme; a vendor states its own in the chip profile)."""
    return bytes(4) + serial


def personalize_native(
    card: CardData, plan: ChipPlan, keys: KeyStore, chip: ChipProfile, atr: bytes
) -> Steps:
    """The chip steps of one card on a native chip (see the module docstring)."""
    serial = chip.serial(atr)
    if not serial:
        raise ChipFailure("ATR", f"no chip serial in the ATR of a {chip.name} chip")
    if chip.algorithm != plan.ssse_algorithm:
        raise ChipFailure(
            "ATR",
            f"a {chip.name} chip is {chip.algorithm}: the product needs {plan.ssse_algorithm}",
        )
    apps = [a for a in card.apps if a.aid != plan.ssse_aid]
    ssse = next((a for a in card.apps if a.aid == plan.ssse_aid), None)
    if apps or ssse is None:
        raise ChipFailure("ATR", f"a {chip.name} chip holds the SSSE only, not this product")
    count = ApduCount()
    try:
        card_id, checks = yield from count(_steps(ssse, plan, keys, chip, serial))
    except CardError as exc:
        if exc.command == "EXTERNAL AUTHENTICATE transport key":
            raise ChipFailure(
                exc.command, "card refused the transport key", auth_failure=True
            ) from None
        raise ChipFailure(exc.command, f"card answered {exc.sw:04X} ({exc.meaning})") from None
    return ChipResult(serial, card_id, False, count.n, checks)


def _send(apdu: bytes, step: str) -> Flow[bytes]:
    return ok((yield apdu), step)


def _challenge() -> Flow[bytes]:
    return (yield from _send(CommandAPDU(0x00, 0x84, 0, 0, le=8).to_bytes(), "GET CHALLENGE"))


def _protected(header: bytes, data: bytes, algorithm: str, key: bytes, *, encrypt: bool,
               step: str) -> Flow[bytes]:  # fmt: skip
    challenge = yield from _challenge()
    command = fmcos.protect(header, data, algorithm, key, challenge, encrypt=encrypt)
    return (yield from _send(command, step))


def _create(fid: int, data: bytes, step: str) -> Flow[bytes]:
    return (yield from _send(CommandAPDU(0x80, 0xE0, fid >> 8, fid & 0xFF, data).to_bytes(), step))


def _records(app: CardApp, serial: bytes, plan: ChipPlan) -> dict[int, bytes]:
    out = {}
    for dgi, value in app.dgis:
        if dgi >> 8 in SSSE_FILES and dgi not in app.secret and 1 <= dgi & 0xFF <= 0x20:
            if dgi == 0x0501 and len(value) == 18:  # 01 10 <card id>: the chip serial goes in
                value = value[:2] + card_id_with_serial(value[2:], serial, plan.card_id_check)
            out[dgi] = value
    return out


def _key_records(app: CardApp, keys: KeyStore, plan: ChipPlan) -> list[tuple[int, fmcos.KeyRecord]]:
    algorithm_id = _ALGORITHM_ID[plan.ssse_algorithm]
    out = []
    tries = 0x33
    for dgi, value in app.dgis:
        if dgi == 0x9F10 and len(value) == 2:
            tries = (value[0] & 0x0F) << 4 | (value[1] & 0x0F)
    for dgi, value in app.dgis:
        if dgi not in app.secret:
            continue
        if 0x8F01 <= dgi <= 0x8F0F:
            key_id = dgi & 0xFF
            key = unwrap_secret(keys, plan.kek, dgi, value)[:16]
            key_type, third = _KEYS.get(key_id, (0x39, 0x11))
            if key_type == 0x34:
                record = fmcos.KeyRecord(0x34, 0xF0, 0xF5, 0x01, algorithm_id, key)
            elif key_type == 0x38:
                record = fmcos.KeyRecord(0x38, 0xF0, 0xF5, 0xFF, 0x33, key)
            else:
                record = fmcos.KeyRecord(0x39, 0xF0, 0xF5, third, 0x33, key)
            out.append((key_id, record))
        elif dgi == 0x8F10:
            out.append((0x00, fmcos.KeyRecord(0x3A, 0xF0, 0xEF, 0x11, tries, pin_from_block(unwrap_secret(keys, plan.kek, dgi, value)))))  # fmt: skip
    return out


def pin_from_block(block: bytes) -> bytes:
    """An ISO 9564 format-2 PIN block (``2L PP.. FF``) → the PIN as packed BCD (F-padded)."""
    digits = block.hex().upper()
    n = int(digits[1], 16)
    if digits[0] != "2" or not 4 <= n <= 12 or not digits[2 : 2 + n].isdigit():
        raise ChipFailure("WRITE KEY PIN", "the perso record's PIN block is malformed")
    text = digits[2 : 2 + n]
    return bytes.fromhex(text + ("F" if n % 2 else ""))


def _steps(
    app: CardApp, plan: ChipPlan, keys: KeyStore, chip: ChipProfile, serial: bytes
) -> Flow[tuple[bytes, tuple[str, ...]]]:
    algorithm = chip.algorithm
    transport = keys.derive_ssse(chip.transport_key, [transport_factor(serial)], wrap_under=None)
    tk = transport[0].secret().value
    del transport
    yield from _send(CommandAPDU(0x00, 0xA4, 0x00, 0x00, b"\x3f\x00").to_bytes(), "SELECT MF")
    challenge = yield from _challenge()
    block = 16 if algorithm == "SM4" else 8
    cryptogram = ecb_encrypt(algorithm, tk, challenge.ljust(block, b"\x00"))
    yield from _send(CommandAPDU(0x00, 0x82, 0x00, 0x00, cryptogram).to_bytes(),
                     "EXTERNAL AUTHENTICATE transport key")  # fmt: skip

    name = app.aid
    df = b"\x38\x10\x00\xf5\xf5\x95\xff\xff" + name
    yield from _create(SSSE_FID, df, "CREATE FILE SSSE DF")
    yield from _send(CommandAPDU(0x00, 0xA4, 0x04, 0x00, name).to_bytes(), "SELECT SSSE DF")
    yield from _create(0x0000, bytes.fromhex("3F020001F5FFFF"), "CREATE FILE key file")
    records = _records(app, serial, plan)
    read = 0xF2 if plan.ssse_generation >= 3 else 0xF0
    for sfi in sorted({dgi >> 8 for dgi in records}):
        count = max(dgi & 0xFF for dgi in records if dgi >> 8 == sfi)
        length = max(64, *(len(v) for d, v in records.items() if d >> 8 == sfi))
        ef = bytes((0x2C, count, length, read, _WRITE_RIGHT.get(sfi, 0x33), 0xFF, 0xFF))
        yield from _create(0xEF00 | sfi, ef, f"CREATE FILE EF{sfi:02X}")

    for key_id, record in _key_records(app, keys, plan):
        header = bytes((0x84, 0xD4, 0x01, key_id))
        yield from _protected(header, fmcos.encode_key(record), algorithm, tk, encrypt=True,
                              step=f"WRITE KEY {key_id:02X}")  # fmt: skip
        del record
    for dgi, value in sorted(records.items()):
        header = bytes((0x04, 0xDC, dgi & 0xFF, (dgi >> 8) << 3 | 4))
        yield from _protected(header, value, algorithm, tk, encrypt=False,
                              step=f"UPDATE RECORD EF{dgi >> 8:02X} rec {dgi & 0xFF}")  # fmt: skip
    yield from _create(0x0001, b"", "END OF CREATION")
    del tk

    checks: list[str] = []
    # FMCOS addresses keys by id: INTERNAL AUTHENTICATE names the IRK whatever the profile says
    native_plan = dataclasses.replace(plan, ssse_ia_p2=plan.ssse_irk)
    yield from verify_ssse(app, records, native_plan, keys, checks)
    return records.get(0x0501, b"\x00\x00")[2:], tuple(checks)
