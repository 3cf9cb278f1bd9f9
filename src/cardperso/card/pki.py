"""The PKI applet of the virtual GP card: :class:`~cardperso.card.pki_core.PkiCore` behind the
GlobalPlatform secure channel.

The applet is installed from the card's PKI load file (:data:`PKI_PACKAGE` /
:data:`PKI_MODULE`, this project's test AIDs beside the SSSE's) under the instance AID
``SS.CERT.ADF1`` (the ADF name public kiosk software selects, native-cos.md N8). Like a Java Card
applet that calls GlobalPlatform's ``SecureChannel``, it passes INITIALIZE UPDATE and EXTERNAL
AUTHENTICATE to the issuer security domain's keys (the same card-side code as the ISD's, one
session per selection). Personalization commands (GENERATE KEY PAIR, certificate writes, SET
PIN, the key envelope) are taken only inside that session, at security level 03 (C-MAC and
C-DECRYPTION: secrets arrive enciphered), and only until END PERSONALIZATION (``80 E0 00 01
00``, the same APDU as the native chip's END OF CREATION), which makes the application
PERSONALIZED. Cardholder commands (PIN, READ BINARY, SIGN) need no session. SIGN's message
may come in an ISO/IEC 7816-4 command chain, each piece wrapped by the secure channel on its
own (:mod:`cardperso.card.pki_core`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardperso.card import lifecycle
from cardperso.card.applet import SW_CONDITIONS, SW_SECURITY, Applet, Command, Reply, Sw, need
from cardperso.card.isd import IssuerSecurityDomain
from cardperso.card.pki_core import PkiCore
from cardperso.card.state import CardState
from cardperso.errors import IllegalTransition
from cardperso.pki.card_app import PKI_ADF_NAME, PKI_MODULE, PKI_PACKAGE

if TYPE_CHECKING:
    from cardperso.card.vcard import VirtualCard

__all__ = ["PKI_AID", "PKI_MODULE", "PKI_PACKAGE", "PkiApplet"]

#: The applet instance's AID: the ADF name "SS.CERT.ADF1".
PKI_AID = PKI_ADF_NAME


class PkiApplet(Applet):
    kind = "pki"

    def __init__(self, nv: CardState, card: VirtualCard) -> None:
        super().__init__(nv)
        self.card = card
        self.core = PkiCore(nv.pki)
        self._sd = IssuerSecurityDomain(nv, card)

    def rebind(self, nv: CardState) -> None:
        super().rebind(nv)
        self.core = PkiCore(nv.pki)
        self._sd = IssuerSecurityDomain(nv, self.card)

    def deselect(self) -> None:
        if hasattr(self, "core"):
            self.core.reset()
            self._sd.deselect()

    def select(self, cmd: Command, aid: bytes) -> bytes | Reply:
        self.deselect()
        return b""

    def _session(self) -> bool:
        ch = self._sd.channel
        return ch is not None and ch.authenticated

    def process(self, cmd: Command) -> bytes | Reply:
        if cmd.ins == 0x50 and cmd.cla & 0xFC == 0x80:
            self.core.check_chain(cmd)  # a new session in the middle of a chain: 6883
            return self._sd._initialize_update(cmd)
        if cmd.ins == 0x82 and cmd.cla & 0xFC == 0x84 and self._sd.channel is not None:
            self.core.check_chain(cmd)
            return self._sd._external_authenticate(cmd)
        if not self._session():
            return self._plain(cmd)
        plain = self._sd._unwrap(cmd)
        confidential = bool(self._sd.channel and self._sd.channel.security_level & 0x02)
        try:
            result = self._perso(plain, confidential)
        except Sw as exc:
            result = Reply(exc.data, exc.sw)
        return self._sd._wrap(result)

    def _plain(self, cmd: Command) -> bytes | Reply:
        """A command outside a secure channel session: the cardholder's commands only."""
        return self.core.process(cmd, perso=False, confidential=False)

    def _perso(self, cmd: Command, confidential: bool) -> bytes | Reply:
        app = self.nv.app(PKI_AID)
        open_ = app is not None and app.lifecycle in ("INSTALLED", "SELECTABLE")
        if (cmd.cla & 0xF0, cmd.ins, cmd.p1, cmd.p2) == (0x80, 0xE0, 0x00, 0x01):
            self.core.check_chain(cmd)
            need(open_ and not cmd.data, SW_SECURITY)
            assert app is not None
            self.core.end_personalization()
            try:
                app.lifecycle = lifecycle.transition(lifecycle.APP, app.lifecycle, "personalize")
            except IllegalTransition:
                raise Sw(SW_CONDITIONS) from None
            return b""
        return self.core.process(cmd, perso=open_, confidential=confidential)
