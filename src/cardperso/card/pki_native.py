"""The PKI ADF on the native-COS chip: :class:`~cardperso.card.pki_core.PkiCore` behind the
chip's own secure messaging.

The ADF is an ordinary DF of the chip's file system, named ``SS.CERT.ADF1`` (made by CREATE
FILE under the DDF ``PKI.社会保障`` while personalizing); its key pairs, certificates and PINs
are :attr:`NativeState.pki <cardperso.card.native_fs.NativeState.pki>`. While the ADF is
current, the chip hands every command to the PKI core except SELECT of a DF by name or FID,
GET CHALLENGE of 4 or 8 bytes (the line-protection challenge) and CREATE FILE / END OF CREATION.

* Personalization is open while the ADF is being created (END OF CREATION not yet sent), as for
  every DF of this chip.
* Secret imports (SET PIN, the key envelope, the private key) arrive as ``84``-class commands
  enciphered and MAC'd under the transport key with the chip's challenge, exactly like WRITE
  KEY (:mod:`cardperso.protocol.fmcos`); a MAC that does not verify answers 6988.
* END OF CREATION of the ADF checks the PKI application is complete (6985 otherwise).
* SIGN may come in an ISO/IEC 7816-4 command chain (CLA b5); only here: elsewhere this chip
  answers a chained command ``6884`` (command chaining not supported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardperso.card.applet import Command, Reply, Sw, parse_command
from cardperso.card.pki_core import PkiCore
from cardperso.pki.card_app import PKI_ADF_NAME

if TYPE_CHECKING:
    from cardperso.card.native import NativeCard

__all__ = ["PkiCore", "in_pki_adf", "process"]


def in_pki_adf(card: NativeCard) -> bool:
    df = card._df_or_none()
    return df is not None and df.name == PKI_ADF_NAME


def _core(card: NativeCard) -> PkiCore:
    core = card.pki_core
    if core is None:
        core = card.pki_core = PkiCore(card.state.pki)
    core.data = card.state.pki  # the state object changes when a transaction is aborted
    return core


def process(card: NativeCard, cmd: Command, challenge: bytes | None) -> bytes | None:
    """The answer data of ``cmd`` in the PKI ADF, or ``None`` when the chip itself handles it."""
    df = card._df
    kind = (cmd.cla & 0x80, cmd.ins)
    core = _core(card)
    if kind == (0x00, 0xA4) and (cmd.p1 == 0x04 or _is_df(card, cmd.data)):
        core.chain = None  # selecting a DF drops a chain, as selecting an applet does on GP
        return None
    if kind == (0x00, 0x84) and cmd.le in (4, 8):
        core.check_chain(cmd)  # the chip's own commands break a chain too: 6883
        return None
    if kind == (0x80, 0xE0):
        core.check_chain(cmd)
        if (cmd.p1, cmd.p2) == (0x00, 0x01) and not df.ended:
            core.end_personalization()
        return None
    confidential = False
    if cmd.cla & 0x04 and cmd.ins != 0x5E:  # CHANGE PIN carries its own MAC
        plain = card._unprotect(cmd, challenge, card._transport().value, encrypted=True)
        header = bytes((cmd.cla & 0xF0, cmd.ins, cmd.p1, cmd.p2))
        cmd = parse_command(header + (bytes((len(plain),)) + plain if plain else b""))
        confidential = True
    result = core.process(cmd, perso=not df.ended, confidential=confidential)
    if isinstance(result, Reply):
        raise Sw(result.sw, result.data)
    return result


def _is_df(card: NativeCard, data: bytes) -> bool:
    if len(data) != 2:
        return False
    fid = int.from_bytes(data, "big")
    return fid == 0x3F00 or card._df.df(fid) is not None
