"""The SSSE (social-security system environment) application of the virtual card.

Layout: ``/work/shared/reference/social-security-card.md``; DGI mapping and the exact
authentication conventions: ``docs/card-dgi-map.md``. Records are simple TLVs keyed by
``SFI ‖ record`` in :class:`~cardperso.card.state.SsseData`; the application's volatile state
(current EF, challenge, which keys authenticated, PIN verified) dies with the selection.
"""

from __future__ import annotations

from cardperso.card.applet import (
    SW_AUTH_BLOCKED,
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_NOT_FOUND,
    SW_RECORD_NOT_FOUND,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_SM_NOT_SUPPORTED,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Applet,
    Command,
    Reply,
    Sw,
    need,
)
from cardperso.card.perso import Personalizer, plaintext
from cardperso.card.state import CardState, SsseData
from cardperso.codec import simpletlv, tlv
from cardperso.crypto import primitives as cp
from cardperso.crypto import ssse as ssse_crypto
from cardperso.errors import DecodeError

#: DF name "sx1.sh.社会保障" in GBK (social-security-card.md).
SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
#: The record files (SFI) and the key that guards their update.
UPDATE_KEY = {0x05: 0x04, 0x06: 0x04, 0x0D: 0x0D}
READ_KEY = 0x0A
IRK = 0x01
FIDS = {0xEF05: 0x05, 0xEF06: 0x06, 0xEF0D: 0x0D}
MAX_RECORDS = 15


def record_key(sfi: int, rec: int) -> str:
    return f"{sfi:02X}{rec:02X}"


def decode_pin_block(block: bytes) -> str:
    """Digits of an ISO 9564 format-2 plaintext PIN block (``2L PP.. FF``); ``6A80`` if bad."""
    digits = block.hex().upper()
    n = int(digits[1], 16)
    if digits[0] != "2" or not 4 <= n <= 12:
        raise Sw(SW_WRONG_DATA)
    pin, fill = digits[2 : 2 + n], digits[2 + n :]
    if not pin.isdigit() or fill.strip("F"):
        raise Sw(SW_WRONG_DATA)
    return pin


def decode_bcd_pin(data: bytes) -> str:
    """Digits of a packed-BCD PIN, ``F``-padded when odd; ``6A80`` if malformed."""
    text = data.hex().upper()
    if text.endswith("F"):
        text = text[:-1]
    if not text.isdigit() or not 4 <= len(text) <= 12:
        raise Sw(SW_WRONG_DATA)
    return text


class SssePersonalizer(Personalizer):
    def __init__(self, nv: CardState) -> None:
        self.nv = nv

    def store(self, dgi: int, value: bytes, encrypted: bool) -> None:
        data = self.nv.ssse
        hi, lo = dgi >> 8, dgi & 0xFF
        if hi in UPDATE_KEY and 1 <= lo <= MAX_RECORDS:
            need(not encrypted, SW_WRONG_DATA)
            try:
                simpletlv.parse_one(value)
            except DecodeError:
                raise Sw(SW_WRONG_DATA) from None
            data.records[record_key(hi, lo)] = value
        elif dgi == 0x9F0C:
            need(len(value) in (1, 2) and not encrypted, SW_WRONG_DATA)
            data.algorithm = value[0]
            data.generation = value[1] if len(value) == 2 else 3
            need(data.generation in (1, 2, 3), SW_WRONG_DATA)
        elif 0x8F01 <= dgi <= 0x8F0F:
            data.keys[f"{lo:02X}"] = plaintext(value, 16, encrypted)
        elif dgi == 0x8F10:
            data.pin = decode_pin_block(plaintext(value, 8, encrypted)).encode()
            if not data.pin_try_limit:
                data.pin_try_limit = data.pin_tries_left = 3
        elif dgi == 0x9F10:
            need(len(value) == 2 and not encrypted, SW_WRONG_DATA)
            need(1 <= value[0] <= 15 and value[1] <= value[0], SW_WRONG_DATA)
            data.pin_try_limit, data.pin_tries_left = value[0], value[1]
        else:
            raise Sw(0x6A88)


class SsseApplet(Applet):
    kind = "ssse"

    def __init__(self, nv: CardState) -> None:
        super().__init__(nv)
        self.deselect()

    @property
    def data(self) -> SsseData:
        return self.nv.ssse

    @property
    def algorithm(self) -> str:
        return "SM4" if self.data.algorithm == 0x03 else "3DES"

    def personalizer(self) -> Personalizer:
        return SssePersonalizer(self.nv)

    def deselect(self) -> None:
        self.current_sfi: int | None = None
        self.challenge: bytes | None = None
        self.authenticated: set[int] = set()
        self.internal_done = False
        self.pin_verified = False

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        self.deselect()
        body = tlv.encode(0x84, aid)
        if self.data.algorithm:
            body += tlv.encode(0xA5, tlv.encode(0x9F0C, bytes((0x86, 0x01, self.data.algorithm))))
        return b"" if cmd.p2 & 0x0C == 0x0C else tlv.encode(0x6F, body)

    def process(self, cmd: Command) -> bytes | Reply:
        if cmd.cla & 0x0C:
            raise Sw(SW_SM_NOT_SUPPORTED)
        handlers = {
            (0x00, 0xA4): self._select_file,
            (0x00, 0xB2): self._read_record,
            (0x00, 0xDC): self._update_record,
            (0x00, 0x84): self._get_challenge,
            (0x00, 0x82): self._external_authenticate,
            (0x00, 0x88): self._internal_authenticate,
            (0x00, 0x20): self._verify,
            (0x80, 0x5E): self._change_pin,
        }
        handler = handlers.get((cmd.cla & 0xF0, cmd.ins))
        if handler is None:
            raise Sw(SW_INS_NOT_SUPPORTED)
        return handler(cmd)

    # -- files ---------------------------------------------------------------------------------

    def _select_file(self, cmd: Command) -> bytes:
        need(cmd.p1 in (0x00, 0x02) and cmd.p2 in (0x00, 0x0C), SW_WRONG_P1P2)
        need(len(cmd.data) == 2, SW_WRONG_LENGTH)
        sfi = FIDS.get(int.from_bytes(cmd.data, "big"))
        need(sfi is not None, SW_NOT_FOUND)
        self.current_sfi = sfi
        return b""

    def _file(self, p2: int) -> int:
        sfi = p2 >> 3
        if sfi == 0:
            need(self.current_sfi is not None, SW_CONDITIONS)
            assert self.current_sfi is not None
            return self.current_sfi
        need(sfi in UPDATE_KEY, SW_NOT_FOUND)
        return sfi

    def _find_record(self, sfi: int, p1: int, p2: int) -> int:
        """The record number addressed by P1 (number, P2 low bits 100; tag, 000)."""
        mode = p2 & 0x07
        if mode == 0x04:
            need(1 <= p1 <= MAX_RECORDS, SW_WRONG_P1P2)
            need(record_key(sfi, p1) in self.data.records, SW_RECORD_NOT_FOUND)
            return p1
        need(mode == 0x00, SW_WRONG_P1P2)
        for rec in range(1, MAX_RECORDS + 1):
            value = self.data.records.get(record_key(sfi, rec))
            if value and value[0] == p1:
                return rec
        raise Sw(SW_RECORD_NOT_FOUND)

    def _read_record(self, cmd: Command) -> bytes:
        need(not cmd.data, SW_WRONG_LENGTH)
        sfi = self._file(cmd.p2)
        if self.data.generation >= 3:
            need(self.internal_done and READ_KEY in self.authenticated, SW_SECURITY)
        rec = self._find_record(sfi, cmd.p1, cmd.p2)
        return self.data.records[record_key(sfi, rec)]

    def _update_record(self, cmd: Command) -> bytes:
        sfi = self._file(cmd.p2)
        need(UPDATE_KEY[sfi] in self.authenticated, SW_SECURITY)
        rec = self._find_record(sfi, cmd.p1, cmd.p2)
        old = self.data.records[record_key(sfi, rec)]
        try:
            tag, _ = simpletlv.parse_one(cmd.data)
        except DecodeError:
            raise Sw(SW_WRONG_DATA) from None
        need(tag == old[0], SW_WRONG_DATA)
        need(len(cmd.data) == len(old), SW_WRONG_LENGTH)
        self.data.records[record_key(sfi, rec)] = cmd.data
        return b""

    # -- authentication ------------------------------------------------------------------------

    def _key(self, key_id: int) -> bytes:
        key = self.data.keys.get(f"{key_id:02X}")
        need(key is not None, SW_REF_NOT_FOUND)
        assert key is not None
        return key

    def _get_challenge(self, cmd: Command) -> bytes:
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        need(not cmd.data and cmd.le in (4, 8, 16), SW_WRONG_LENGTH)
        assert cmd.le is not None
        self.challenge = cp.random_bytes(cmd.le)
        return self.challenge

    def _external_authenticate(self, cmd: Command) -> bytes | Reply:
        """``00 82 00 id``: the challenge, zero-padded to one cipher block, encrypted under the
        key: 16 bytes on SM4 cards, 8 bytes on 3DES (second-generation) cards."""
        need(cmd.p1 == 0, SW_WRONG_P1P2)
        size = cp.BLOCK_SIZE[self.algorithm]
        need(len(cmd.data) == size, SW_WRONG_LENGTH)
        key = self._key(cmd.p2)
        challenge, self.challenge = self.challenge, None
        need(challenge is not None, SW_CONDITIONS)
        assert challenge is not None
        block = challenge[:size].ljust(size, b"\x00")
        expected = cp.ecb_encrypt(self.algorithm, key, block)
        if not cp.equal(expected, cmd.data):
            self.authenticated.discard(cmd.p2)
            return Reply(b"", 0x6300)
        self.authenticated.add(cmd.p2)
        return b""

    def _internal_authenticate(self, cmd: Command) -> bytes:
        need(cmd.p1 == 0 and cmd.p2 in (0x00, IRK), SW_WRONG_P1P2)
        need(len(cmd.data) == 16, SW_WRONG_LENGTH)
        irk = self._key(IRK)
        factor, random = cmd.data[:8], cmd.data[8:]
        session = ssse_crypto.diversify_one(irk, self.algorithm, factor)
        self.internal_done = True
        return cp.ecb_encrypt(self.algorithm, session, random + bytes(8))

    # -- PIN -----------------------------------------------------------------------------------

    def _check_pin(self, digits: str) -> Reply | None:
        """None when ``digits`` is the PIN; otherwise the 63Cx / 6983 reply (counted)."""
        data = self.data
        need(bool(data.pin), SW_REF_NOT_FOUND)
        if data.pin_tries_left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        if cp.equal(digits.encode(), data.pin):
            data.pin_tries_left = data.pin_try_limit
            return None
        data.pin_tries_left -= 1
        self.pin_verified = False
        return Reply(b"", 0x63C0 | data.pin_tries_left)

    def _verify(self, cmd: Command) -> bytes | Reply:
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        if not cmd.data:
            need(bool(self.data.pin), SW_REF_NOT_FOUND)
            if self.data.pin_tries_left == 0:
                raise Sw(SW_AUTH_BLOCKED)
            return Reply(b"", 0x63C0 | self.data.pin_tries_left)
        need(len(cmd.data) <= 6, SW_WRONG_LENGTH)
        failed = self._check_pin(decode_bcd_pin(cmd.data))
        if failed is not None:
            return failed
        self.pin_verified = True
        return b""

    def _change_pin(self, cmd: Command) -> bytes | Reply:
        need(cmd.p1 == 0x01 and cmd.p2 == 0x00, SW_WRONG_P1P2)
        cut = cmd.data.find(b"\xff")
        need(cut > 0, SW_WRONG_DATA)
        old, new = decode_bcd_pin(cmd.data[:cut]), decode_bcd_pin(cmd.data[cut + 1 :])
        failed = self._check_pin(old)
        if failed is not None:
            return failed
        self.data.pin = new.encode()
        self.data.pin_tries_left = self.data.pin_try_limit
        self.pin_verified = True
        return b""
