"""The PBOC debit / electronic-cash application of the virtual card and its PSE/PPSE."""

from __future__ import annotations

from cardperso.card.applet import Applet
from cardperso.card.state import CardState

PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"


class PbocApplet(Applet):
    kind = "pboc"


class DirectoryApplet(Applet):
    kind = "directory"

    def __init__(self, nv: CardState, *, contactless: bool) -> None:
        super().__init__(nv)
        self.contactless = contactless

    def available(self) -> bool:
        return False
