"""PSE (``1PAY.SYS.DDF01``, contact, a record directory) and PPSE (``2PAY.SYS.DDF01``,
contactless, a directory in the FCI), generated from the personalized PBOC application
(docs/card-dgi-map.md; EMV Book 1 12.2, EMV contactless Book B 3.3)."""

from __future__ import annotations

from cardperso.card import lifecycle
from cardperso.card.applet import (
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_RECORD_NOT_FOUND,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Applet,
    Command,
    Reply,
    Sw,
    need,
)
from cardperso.card.state import CardState
from cardperso.codec import tlv
from cardperso.errors import DecodeError

PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"


class DirectoryApplet(Applet):
    """PSE (contact, a record directory) or PPSE (contactless, FCI directory), generated from
    the personalized PBOC application (docs/card-dgi-map.md)."""

    kind = "directory"

    def __init__(self, nv: CardState, *, contactless: bool) -> None:
        super().__init__(nv)
        self.contactless = contactless

    def _target(self) -> tuple[bytes, bytes] | None:
        app = self.nv.app_of_kind("pboc")
        if app is None or not lifecycle.selectable(app.lifecycle):
            return None
        label = b""
        raw = self.nv.pboc.dgis.get("9102", b"")
        try:
            found = tlv.find(tlv.parse(raw), 0x50)
        except DecodeError:
            found = None
        if found is not None:
            label = found.value
        return app.aid, label

    def available(self) -> bool:
        return self._target() is not None

    def _entry(self) -> bytes:
        target = self._target()
        need(target is not None, SW_CONDITIONS)
        assert target is not None
        aid, label = target
        body = tlv.encode(0x4F, aid)
        if label:
            body += tlv.encode(0x50, label)
        return tlv.encode(0x61, body + tlv.encode(0x87, b"\x01"))

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        directory = tlv.encode(0xBF0C, self._entry()) if self.contactless else b""
        prop = directory or tlv.encode(0x88, b"\x01")
        return tlv.encode(0x6F, tlv.encode(0x84, aid) + tlv.encode(0xA5, prop))

    def process(self, cmd: Command) -> bytes | Reply:
        if cmd.cla & 0xF0 != 0x00 or cmd.ins != 0xB2 or self.contactless:
            raise Sw(SW_INS_NOT_SUPPORTED)
        need(not cmd.data, SW_WRONG_LENGTH)
        need(cmd.p2 & 0x07 == 0x04, SW_WRONG_P1P2)
        need(cmd.p2 >> 3 == 1 and cmd.p1 == 1, SW_RECORD_NOT_FOUND)
        return tlv.encode(0x70, self._entry())
