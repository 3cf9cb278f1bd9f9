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
from cardperso.protocol.channel import (
    C_DEC,
    C_MAC,
    R_ENC,
    R_MAC,
    KeySource,
    SessionInfo,
    check_success,
    parse_command,
    resolve_keys,
    split_response,
)
from cardperso.protocol.session import Event, Session, State

__all__ = ["LEVELS", "Scp03Card", "Scp03Host", "Scp03Messaging"]

LEVELS = (0x00, C_MAC, C_MAC | C_DEC, C_MAC | R_MAC, C_MAC | C_DEC | R_MAC, 0x33)
_SUPPORTED_I_BITS = 0x10 | 0x20 | 0x40
_SW_OK = b"\x90\x00"


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
        plain = body
        if self.level & C_DEC and body:
            if len(body) % 16:
                raise MacMismatch("encrypted command data is not a whole number of blocks")
            try:
                plain = cp.unpad_method2(
                    cp.cbc_decrypt("AES", self._keys.enc, body, self._icv(False))
                )
            except UsageError:
                raise MacMismatch("encrypted command data has bad padding") from None
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
            if len(body) % 16:
                raise MacMismatch("encrypted response data is not a whole number of blocks")
            try:
                body = cp.unpad_method2(
                    cp.cbc_decrypt("AES", self._keys.enc, body, self._icv(True))
                )
            except UsageError:
                raise MacMismatch("encrypted response data has bad padding") from None
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


class Scp03Host:
    """Host side of an SCP03 session (S8). Same life cycle as
    :class:`~cardperso.protocol.scp02.Scp02Host`: a card cryptogram that does not verify raises
    :class:`CryptogramMismatch` and closes the session for good."""

    def __init__(self, static_keys: KeySource, security_level: int = C_MAC, kvn: int = 0) -> None:
        if security_level not in LEVELS:
            raise UsageError(f"SCP03 security level {security_level:02X} is not supported")
        self._keys_source = static_keys
        self.security_level = security_level
        self.kvn = kvn
        self._state = Session("SCP03 host")
        self._host_challenge = b""
        self._info: SessionInfo | None = None
        self._static: gp.StaticKeys | None = None
        self._sm: Scp03Messaging | None = None

    @property
    def state(self) -> State:
        return self._state.state

    @property
    def is_open(self) -> bool:
        return self._state.state is State.OPEN

    @property
    def session(self) -> SessionInfo | None:
        """Session facts (no keys) once INITIALIZE UPDATE was answered, else None."""
        return self._info

    def initialize_update(self, host_challenge: bytes | None = None) -> bytes:
        hc = cp.random_bytes(8) if host_challenge is None else host_challenge
        if len(hc) != 8:
            raise UsageError("SCP03 (S8) host challenge must be 8 bytes")
        self._state.fire(Event.INITIALIZE_UPDATE)
        self._host_challenge = hc
        return CommandAPDU(0x80, 0x50, self.kvn, 0x00, hc, 256).to_bytes()

    def process_initialize_update_response(self, response: bytes) -> bytes:
        if self._state.state is not State.INIT_SENT:
            self._state.fire(Event.CARD_AUTHENTICATED)  # raises IllegalTransition
        try:
            data = (
                check_success(response, "INITIALIZE UPDATE")
                if len(response) in (31, 34)
                else response
            )
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
        except Exception:
            self._state.fire(Event.FAIL)
            raise
        self._state.fire(Event.CARD_AUTHENTICATED)
        self._info = SessionInfo(3, i, kvn, kdd, seq, self.security_level)
        self._static = static
        host_cryptogram = gp.scp03_cryptogram(sk.mac, gp.SCP03_HOST_CRYPTOGRAM, context)
        self._sm = Scp03Messaging(sk, C_MAC)
        ext = CommandAPDU(0x80, 0x82, self.security_level, 0x00, host_cryptogram)
        wrapped = self._sm.wrap(ext, count=False)
        self._sm.level = self.security_level
        return wrapped

    def process_external_authenticate_response(self, response: bytes) -> None:
        try:
            check_success(response, "EXTERNAL AUTHENTICATE")
        except Exception:
            self._state.fire(Event.FAIL)
            raise
        self._state.fire(Event.AUTHENTICATED)

    def wrap(self, apdu: bytes) -> bytes:
        self._state.fire(Event.WRAP)
        assert self._sm is not None
        return self._sm.wrap(parse_command(apdu))

    def unwrap(self, response: bytes) -> bytes:
        """Check R-MAC / decrypt R-ENC; a bad R-MAC raises :class:`MacMismatch` and closes."""
        self._state.fire(Event.UNWRAP)
        assert self._sm is not None
        try:
            return self._sm.unwrap_response(response)
        except MacMismatch:
            self._state.fire(Event.FAIL)
            raise

    def encrypt_dgi_data(self, data: bytes) -> bytes:
        """AES-CBC, IV 0, under the static DEK (``data`` already padded to 16-byte blocks)."""
        self._state.fire(Event.ENCRYPT_DATA)
        assert self._static is not None
        return cp.cbc_encrypt("AES", self._static.dek, data)

    def close(self) -> None:
        self._state.fire(Event.CLOSE)


class Scp03Card:
    """Card side of SCP03 (S8). ``seq_counter`` is the last sequence counter used; each
    INITIALIZE UPDATE takes the next value (pseudo-random challenges never repeat). ``aid`` is
    the security domain's AID, the context of the pseudo-random card challenge (i bit 0x10)."""

    def __init__(
        self,
        static_keys: gp.StaticKeys,
        kvn: int,
        seq_counter: int = 0,
        i: int = 0x70,
        *,
        kdd: bytes = bytes(10),
        aid: bytes = bytes.fromhex("A000000151000000"),
        challenge: Callable[[int], bytes] = cp.random_bytes,
    ) -> None:
        _check_i(i)
        if len(kdd) != 10:
            raise UsageError("KDD must be 10 bytes")
        self._static = static_keys
        self.kvn = kvn
        self.seq_counter = seq_counter
        self.i = i
        self.kdd = kdd
        self.aid = aid
        self._challenge = challenge
        self._state = Session("SCP03 card")
        self._sk: gp.Scp03SessionKeys | None = None
        self._sm: Scp03Messaging | None = None
        self._context = b""
        self.security_level = 0

    @property
    def state(self) -> State:
        return self._state.state

    @property
    def is_open(self) -> bool:
        return self._state.state is State.OPEN

    def reset(self) -> None:
        if self._state.allowed(Event.CARD_REJECT):
            self._state.fire(Event.CARD_REJECT)

    def initialize_update(self, apdu: bytes) -> bytes:
        cmd = parse_command(apdu)
        if len(cmd.data) != 8:
            return b"\x67\x00"
        if cmd.p1 not in (0, self.kvn):
            return b"\x6a\x88"
        self._state.fire(Event.CARD_INITIALIZE_UPDATE)
        seq = b""
        if self.i & 0x10:
            self.seq_counter = (self.seq_counter + 1) & 0xFFFFFF
            seq = self.seq_counter.to_bytes(3, "big")
            cc = gp.scp03_card_challenge(self._static.enc, seq, self.aid)
        else:
            cc = self._challenge(8)
        self._context = cmd.data + cc
        self._sk = gp.scp03_session_keys(self._static, self._context)
        cryptogram = gp.scp03_cryptogram(self._sk.mac, gp.SCP03_CARD_CRYPTOGRAM, self._context)
        self._sm = None
        return self.kdd + bytes([self.kvn, 0x03, self.i]) + cc + cryptogram + seq + _SW_OK

    def external_authenticate(self, apdu: bytes) -> bytes:
        if self._state.state is not State.AUTH_PENDING or self._sk is None:
            return b"\x69\x85"
        cmd = parse_command(apdu)
        level = cmd.p1
        if not _level_ok(level, self.i) or len(cmd.data) != 16:
            self._state.fire(Event.CARD_REJECT)
            return b"\x67\x00" if _level_ok(level, self.i) else b"\x6a\x86"
        sm = Scp03Messaging(self._sk, C_MAC)
        try:
            plain = sm.unwrap(cmd, count=False)
        except MacMismatch:
            self._state.fire(Event.CARD_REJECT)
            return b"\x69\x82"
        expected = gp.scp03_cryptogram(self._sk.mac, gp.SCP03_HOST_CRYPTOGRAM, self._context)
        if not cp.equal(expected, plain.data):
            self._state.fire(Event.CARD_REJECT)
            return b"\x63\x00"
        sm.level = level
        self._sm = sm
        self.security_level = level
        self._state.fire(Event.AUTHENTICATED)
        return _SW_OK

    def unwrap_command(self, apdu: bytes) -> bytes:
        self._state.fire(Event.UNWRAP_COMMAND)
        assert self._sm is not None
        try:
            return self._sm.unwrap(parse_command(apdu)).to_bytes()
        except MacMismatch:
            self._state.fire(Event.CARD_REJECT)
            raise

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        self._state.fire(Event.WRAP_RESPONSE)
        assert self._sm is not None
        return self._sm.wrap_response(data, sw)

    def decrypt_dgi_data(self, data: bytes) -> bytes:
        """AES-CBC (IV 0) decryption under the static DEK."""
        self._state.fire(Event.DECRYPT_DATA)
        return cp.cbc_decrypt("AES", self._static.dek, data)
