"""The GlobalPlatform issuer security domain (card manager) of the virtual card."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardperso.card.applet import Applet, Command, Reply
from cardperso.card.state import CardState

if TYPE_CHECKING:
    from cardperso.card.vcard import VirtualCard


class IssuerSecurityDomain(Applet):
    kind = "isd"

    def __init__(self, nv: CardState, card: VirtualCard) -> None:
        super().__init__(nv)
        self.card = card

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        return b"\x6f" + bytes((len(aid) + 2,)) + b"\x84" + bytes((len(aid),)) + aid
