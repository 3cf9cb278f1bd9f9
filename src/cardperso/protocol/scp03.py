"""GlobalPlatform SCP03 (Card Specification Amendment D), host side and card side, S8 mode.

How this works
--------------
* INITIALIZE UPDATE ``80 50 KVN 00 08 <host challenge> 00`` is answered by
  ``KDD(10) || KVN || 03 || i || card challenge(8) || card cryptogram(8) [|| seq(3)]``; the
  sequence counter is present when i has bit 0x10 (pseudo-random card challenge).
* Session keys, cryptograms and the pseudo-random challenge come from the SP 800-108 KDF in
  :mod:`cardperso.crypto.gp`. Host and card share :class:`Scp03Messaging`, so wrapping on one
  side and unwrapping on the other run the same code (checked against pySim's exchanges).
* C-MAC: ``CMAC(S-MAC, chain || CLA' INS P1 P2 Lc' || data')``, 8 bytes appended; the chain
  starts at 00 x 16 and becomes each full CMAC (EXTERNAL AUTHENTICATE included).
* C-DEC: the encryption counter is 0 after EXTERNAL AUTHENTICATE and incremented for every
  command, with or without data; ICV = AES(S-ENC, counter as 16 bytes); data is 80-padded to
  16 bytes and AES-CBC encrypted before the MAC is computed.
* R-MAC: ``CMAC(S-RMAC, chain || response data' || SW)``, 8 bytes, for SW 9000/62xx/63xx.
  R-ENC: response data AES-CBC encrypted with ICV = AES(S-ENC, 80 || counter (15 bytes)).
* i bits: 0x10 pseudo-random card challenge, 0x20 R-MAC support, 0x40 R-ENC support; 0x01
  (S16 mode) is refused. Security levels 00, 01, 03, 11, 13, 33 (R-MAC/R-ENC need the i bits).
* Sensitive data (DGIs, keys) is AES-CBC encrypted under the *static* DEK with a zero IV.
"""

from __future__ import annotations

from collections.abc import Callable

from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import CryptogramMismatch, DecodeError, MacMismatch, UsageError
from cardperso.layouts.gp import ISD_AID
from cardperso.protocol.base import CardChannelBase, HostChannelBase
from cardperso.protocol.channel import (
    C_DEC,
    C_MAC,
    R_ENC,
    R_MAC,
    KeySource,
    SessionInfo,
    resolve_keys,
    split_response,
)

__all__ = ["LEVELS", "Scp03Card", "Scp03Host", "Scp03Messaging"]

LEVELS = (0x00, C_MAC, C_MAC | C_DEC, C_MAC | R_MAC, C_MAC | C_DEC | R_MAC, 0x33)
_SUPPORTED_I_BITS = 0x10 | 0x20 | 0x40


def _check_i(i: int) -> None:
    if not 0 <= i <= 0xFF or i & ~_SUPPORTED_I_BITS:
        raise UsageError(f"SCP03 i={i:02X} is not supported (S8 mode; bits 10, 20, 40)")


def _level_ok(level: int, i: int) -> bool:
    if level not in LEVELS:
        return False
    if level & R_MAC and not i & 0x20:
        return False
    return not (level & R_ENC and not i & 0x40)


def _rmac_expected(sw: int) -> bool:
    return sw == 0x9000 or sw >> 8 in (0x62, 0x63)


class Scp03Messaging:
    """C-MAC/C-DEC and R-MAC/R-ENC of one SCP03 session, shared by host and card."""

    __slots__ = ("_chain", "_counter", "_keys", "level")

    def __init__(self, keys: gp.Scp03SessionKeys, level: int) -> None:
        self._keys = keys
        self.level = level
        self._chain = bytes(16)
        self._counter = 0

    def _icv(self, response: bool) -> bytes:
        block = bytearray(self._counter.to_bytes(16, "big"))
        if response:
            block[0] = 0x80
        return cp.ecb_encrypt("AES", self._keys.enc, bytes(block))

    def _decrypt(self, body: bytes, *, response: bool) -> bytes:
        """C-DEC / R-ENC data back to plain; bad blocks or padding raise :class:`MacMismatch`."""
        what = "response" if response else "command"
        if len(body) % 16:
            raise MacMismatch(f"encrypted {what} data is not a whole number of blocks")
        try:
            return cp.unpad_method2(
                cp.cbc_decrypt("AES", self._keys.enc, body, self._icv(response))
            )
        except UsageError:
            raise MacMismatch(f"encrypted {what} data has bad padding") from None

    def _cmac(self, cla: int, ins: int, p1: int, p2: int, body: bytes) -> bytes:
        if len(body) + 8 > 255:
            raise UsageError("SCP03 command data too long for a short APDU with a C-MAC")
        header = bytes([cla | 0x04, ins, p1, p2, len(body) + 8])
        self._chain = cp.cmac("AES", self._keys.mac, self._chain + header + body)
        return self._chain[:8]

    def wrap(self, cmd: CommandAPDU, *, count: bool = True) -> bytes:
        """Secured form of ``cmd``. ``count=False`` for EXTERNAL AUTHENTICATE itself."""
        if count:
            self._counter += 1
        if not self.level & C_MAC:
            return cmd.to_bytes()
        data = cmd.data
        if self.level & C_DEC and data:
            data = cp.cbc_encrypt("AES", self._keys.enc, cp.pad_method2(data, 16), self._icv(False))
        mac = self._cmac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data)
        return CommandAPDU(cmd.cla | 0x04, cmd.ins, cmd.p1, cmd.p2, data + mac, cmd.le).to_bytes()

    def unwrap(self, cmd: CommandAPDU, *, count: bool = True) -> CommandAPDU:
        """Check the C-MAC (then decrypt); raise :class:`MacMismatch`."""
        if count:
            self._counter += 1
        if not self.level & C_MAC:
            return cmd
        if not cmd.cla & 0x04 or len(cmd.data) < 8:
            raise MacMismatch("command lacks the C-MAC the security level requires")
        body, received = cmd.data[:-8], cmd.data[-8:]
        cp.verify_mac(self._cmac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, body), received, "C-MAC")
        plain = self._decrypt(body, response=False) if self.level & C_DEC and body else body
        return CommandAPDU(cmd.cla & ~0x04 & 0xFF, cmd.ins, cmd.p1, cmd.p2, plain, cmd.le)

    def _rmac(self, body: bytes, sw: int) -> bytes:
        return cp.cmac("AES", self._keys.rmac, self._chain + body + sw.to_bytes(2, "big"))[:8]

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """Card side: R-ENC then R-MAC as the level says."""
        body = data
        if self.level & R_ENC and data:
            body = cp.cbc_encrypt("AES", self._keys.enc, cp.pad_method2(data, 16), self._icv(True))
        if self.level & R_MAC and _rmac_expected(sw):
            body += self._rmac(body, sw)
        return body + sw.to_bytes(2, "big")

    def unwrap_response(self, response: bytes) -> bytes:
        """Host side: check the R-MAC, then decrypt R-ENC data; returns ``data || SW``."""
        body, sw = split_response(response)
        if self.level & R_MAC and _rmac_expected(sw):
            if len(body) < 8:
                raise MacMismatch("response lacks the R-MAC the security level requires")
            body, received = body[:-8], body[-8:]
            cp.verify_mac(self._rmac(body, sw), received, "R-MAC")
        if self.level & R_ENC and body:
            body = self._decrypt(body, response=True)
        return body + sw.to_bytes(2, "big")


def _parse_iu_response(data: bytes) -> tuple[bytes, int, int, bytes, bytes, bytes]:
    """-> (KDD, KVN, i, card challenge, card cryptogram, sequence counter or b"")."""
    if len(data) not in (29, 32):
        raise DecodeError(f"SCP03 INITIALIZE UPDATE response is {len(data)} bytes (29 or 32)")
    kdd, kvn, scp, i = data[:10], data[10], data[11], data[12]
    if scp != 0x03:
        raise UsageError(f"card answered INITIALIZE UPDATE for SCP{scp:02X}, not SCP03")
    _check_i(i)
    seq = data[29:32]
    if bool(i & 0x10) != bool(seq):
        raise DecodeError("SCP03 sequence counter presence does not match the i parameter")
    return kdd, kvn, i, data[13:21], data[21:29], seq


class Scp03Host(HostChannelBase):
    """Host side of an SCP03 session (S8). Same life cycle as
    :class:`~cardperso.protocol.scp02.Scp02Host`: a card cryptogram that does not verify raises
    :class:`CryptogramMismatch` and closes the session for good."""

    _NAME = "SCP03"
    _CHALLENGE_NAME = "SCP03 (S8)"
    _IU_RESPONSE_WITH_SW = (31, 34)

    def __init__(self, static_keys: KeySource, security_level: int = C_MAC, kvn: int = 0) -> None:
        if security_level not in LEVELS:
            raise UsageError(f"SCP03 security level {security_level:02X} is not supported")
        super().__init__(static_keys, security_level, kvn)
        self._static: gp.StaticKeys | None = None

    def _verify_card(self, data: bytes) -> tuple[SessionInfo, bytes]:
        kdd, kvn, i, cc, cryptogram, seq = _parse_iu_response(data)
        if not _level_ok(self.security_level, i):
            raise UsageError(
                f"security level {self.security_level:02X} needs R-MAC/R-ENC, which the "
                f"card (i={i:02X}) does not support"
            )
        static = resolve_keys(self._keys_source, kdd)
        context = self._host_challenge + cc
        sk = gp.scp03_session_keys(static, context)
        expected = gp.scp03_cryptogram(sk.mac, gp.SCP03_CARD_CRYPTOGRAM, context)
        if not cp.equal(expected, cryptogram):
            raise CryptogramMismatch(
                "SCP03 card cryptogram does not verify: wrong keys (or KVN/diversification); "
                "do not retry EXTERNAL AUTHENTICATE with these keys"
            )
        self._static = static
        self._sm = Scp03Messaging(sk, C_MAC)
        host_cryptogram = gp.scp03_cryptogram(sk.mac, gp.SCP03_HOST_CRYPTOGRAM, context)
        return SessionInfo(3, i, kvn, kdd, seq, self.security_level), host_cryptogram

    def _encrypt_dgi(self, data: bytes) -> bytes:
        """AES-CBC, IV 0, under the static DEK."""
        assert self._static is not None
        return cp.cbc_encrypt("AES", self._static.dek, data)


class Scp03Card(CardChannelBase[gp.Scp03SessionKeys]):
    """Card side of SCP03 (S8). ``seq_counter`` is the last sequence counter used; each
    INITIALIZE UPDATE takes the next value (pseudo-random challenges never repeat). ``aid`` is
    the security domain's AID, the context of the pseudo-random card challenge (i bit 0x10)."""

    _NAME = "SCP03"

    def __init__(
        self,
        static_keys: gp.StaticKeys,
        kvn: int,
        seq_counter: int = 0,
        i: int = 0x70,
        *,
        kdd: bytes = bytes(10),
        aid: bytes = ISD_AID,
        challenge: Callable[[int], bytes] = cp.random_bytes,
    ) -> None:
        _check_i(i)
        super().__init__(static_keys, kvn, seq_counter, i, kdd, challenge)
        self.aid = aid
        self._context = b""

    def _answer_initialize_update(self, host_challenge: bytes) -> bytes:
        seq = b""
        if self.i & 0x10:
            self.seq_counter = (self.seq_counter + 1) & 0xFFFFFF
            seq = self.seq_counter.to_bytes(3, "big")
            cc = gp.scp03_card_challenge(self._static.enc, seq, self.aid)
        else:
            cc = self._challenge(8)
        self._context = host_challenge + cc
        self._sk = gp.scp03_session_keys(self._static, self._context)
        cryptogram = gp.scp03_cryptogram(self._sk.mac, gp.SCP03_CARD_CRYPTOGRAM, self._context)
        return self.kdd + bytes([self.kvn, 0x03, self.i]) + cc + cryptogram + seq

    def _level_ok(self, level: int) -> bool:
        return _level_ok(level, self.i)

    def _messaging(self, sk: gp.Scp03SessionKeys, level: int) -> Scp03Messaging:
        return Scp03Messaging(sk, level)

    def _host_cryptogram(self, sk: gp.Scp03SessionKeys) -> bytes:
        return gp.scp03_cryptogram(sk.mac, gp.SCP03_HOST_CRYPTOGRAM, self._context)

    def _decrypt_dgi(self, data: bytes) -> bytes:
        """AES-CBC (IV 0) decryption under the static DEK."""
        return cp.cbc_decrypt("AES", self._static.dek, data)
