"""GlobalPlatform SCP02 (Card Specification 2.2/2.3 appendix E), host side and card side.

How this works
--------------
* INITIALIZE UPDATE ``80 50 KVN 00 08 <host challenge> 00`` is answered by
  ``KDD(10) || KVN || 02 || seq(2) || card challenge(6) || card cryptogram(8)``.
* Session keys, cryptograms and the MAC come from :mod:`cardperso.crypto.gp`; both sides use
  the same :class:`Scp02Messaging` object type for C-MAC / C-DEC, so the host's wrap and the
  card's unwrap run the very same code (checked against pySim's public exchange).
* i parameter bits supported: 0x01 (three keys), 0x04 (C-MAC on the modified APDU; clear =
  unmodified), 0x10 (ICV encryption: the next ICV is the last C-MAC encrypted with single DES
  under the left half of S-MAC), 0x40 (card challenge method, no effect on the host). Implicit
  initiation (0x02), an ICV computed over the AID (0x08) and R-MAC (0x20) are refused.
* Security levels: 00, 01 (C-MAC), 03 (C-DEC + C-MAC). C-MAC is computed over the plain
  command (CLA with bit 0x04, Lc + 8), then the data is 80-padded and TDES-CBC encrypted
  under S-ENC with a zero IV. Le is never MACed.
* Sensitive data (DGIs 8000, keys) is TDES-ECB encrypted under the session DEK.
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
    KeySource,
    SessionInfo,
    check_success,
    parse_command,
    resolve_keys,
    split_response,
)
from cardperso.protocol.session import Event, Session, State

__all__ = ["LEVELS", "Scp02Card", "Scp02Host", "Scp02Messaging"]

LEVELS = (0x00, C_MAC, C_MAC | C_DEC)
_SUPPORTED_I_BITS = 0x01 | 0x04 | 0x10 | 0x40
_SW_OK = b"\x90\x00"


def _check_i(i: int) -> None:
    if not 0 <= i <= 0xFF or i & ~_SUPPORTED_I_BITS:
        raise UsageError(
            f"SCP02 i={i:02X} is not supported (implicit initiation, AID-based ICV and R-MAC "
            "are not implemented)"
        )


def _check_level(level: int) -> None:
    if level not in LEVELS:
        raise UsageError(f"SCP02 security level {level:02X} is not supported (00, 01, 03)")


class Scp02Messaging:
    """C-MAC / C-DEC of one SCP02 session: the ICV chain and the key use, shared by host and
    card. ``wrap`` is what the host sends; ``unwrap`` is what the card checks."""

    __slots__ = ("_icv", "_keys", "i", "level")

    def __init__(self, keys: gp.Scp02SessionKeys, i: int, level: int) -> None:
        self._keys = keys
        self.i = i
        self.level = level
        self._icv = bytes(8)  # the first C-MAC (EXTERNAL AUTHENTICATE) uses a zero ICV

    def _mac(self, cla: int, ins: int, p1: int, p2: int, plain: bytes) -> bytes:
        if len(plain) + 8 > 255:
            raise UsageError("SCP02 command data too long for a short APDU with a C-MAC")
        if self.i & 0x04:  # C-MAC on the modified APDU
            header = bytes([cla | 0x04, ins, p1, p2, len(plain) + 8])
        else:
            header = bytes([cla & ~0x04 & 0xFF, ins, p1, p2, len(plain)])
        mac = gp.scp02_mac(self._keys.mac, header + plain, self._icv)
        self._icv = gp.scp02_icv_encrypt(self._keys.mac, mac) if self.i & 0x10 else mac
        return mac

    def wrap(self, cmd: CommandAPDU) -> bytes:
        """The secured form of ``cmd`` (level 00 returns it unchanged)."""
        if not self.level & C_MAC:
            return cmd.to_bytes()
        mac = self._mac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data)
        data = cmd.data
        if self.level & C_DEC and data:
            data = cp.cbc_encrypt("3DES", self._keys.enc, cp.pad_method2(data, 8))
        if len(data) + 8 > 255:
            raise UsageError("SCP02 encrypted command data too long for a short APDU")
        return CommandAPDU(cmd.cla | 0x04, cmd.ins, cmd.p1, cmd.p2, data + mac, cmd.le).to_bytes()

    def unwrap(self, cmd: CommandAPDU) -> CommandAPDU:
        """Check (and decrypt) a secured command; raise :class:`MacMismatch`."""
        if not self.level & C_MAC:
            return cmd
        if not cmd.cla & 0x04 or len(cmd.data) < 8:
            raise MacMismatch("command lacks the C-MAC the security level requires")
        body, received = cmd.data[:-8], cmd.data[-8:]
        plain = body
        if self.level & C_DEC and body:
            if len(body) % 8:
                raise MacMismatch("encrypted command data is not a whole number of blocks")
            try:
                plain = cp.unpad_method2(cp.cbc_decrypt("3DES", self._keys.enc, body))
            except UsageError:
                raise MacMismatch("encrypted command data has bad padding") from None
        cp.verify_mac(self._mac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, plain), received, "C-MAC")
        return CommandAPDU(cmd.cla & ~0x04 & 0xFF, cmd.ins, cmd.p1, cmd.p2, plain, cmd.le)


def _parse_iu_response(data: bytes) -> tuple[bytes, int, int, bytes, bytes, bytes]:
    if len(data) != 28:
        raise DecodeError(f"SCP02 INITIALIZE UPDATE response is {len(data)} bytes, expected 28")
    kdd, kvn, scp = data[:10], data[10], data[11]
    if scp != 0x02:
        raise UsageError(f"card answered INITIALIZE UPDATE for SCP{scp:02X}, not SCP02")
    return kdd, kvn, scp, data[12:14], data[14:20], data[20:28]


class Scp02Host:
    """Host (off-card entity) side of an SCP02 session.

    Use: ``initialize_update()`` -> transmit -> ``process_initialize_update_response(resp)``
    (verifies the card cryptogram, raises :class:`CryptogramMismatch` and closes the session
    for good: never retry) -> transmit the returned EXTERNAL AUTHENTICATE ->
    ``process_external_authenticate_response(resp)`` -> ``wrap`` / ``unwrap``.
    """

    def __init__(
        self, static_keys: KeySource, security_level: int = C_MAC, i: int = 0x55, kvn: int = 0
    ) -> None:
        _check_i(i)
        _check_level(security_level)
        self._keys_source = static_keys
        self.security_level = security_level
        self.i = i
        self.kvn = kvn
        self._state = Session("SCP02 host")
        self._host_challenge = b""
        self._info: SessionInfo | None = None
        self._sk: gp.Scp02SessionKeys | None = None
        self._sm: Scp02Messaging | None = None

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
        """``80 50 KVN 00 08 <host challenge> 00`` (a random challenge unless one is given)."""
        hc = cp.random_bytes(8) if host_challenge is None else host_challenge
        if len(hc) != 8:
            raise UsageError("SCP02 host challenge must be 8 bytes")
        self._state.fire(Event.INITIALIZE_UPDATE)
        self._host_challenge = hc
        return CommandAPDU(0x80, 0x50, self.kvn, 0x00, hc, 256).to_bytes()

    def process_initialize_update_response(self, response: bytes) -> bytes:
        """Verify the card cryptogram and return the EXTERNAL AUTHENTICATE APDU.
        ``response`` may end with its status word (9000) or be the bare 28 data bytes."""
        if self._state.state is not State.INIT_SENT:
            self._state.fire(Event.CARD_AUTHENTICATED)  # raises IllegalTransition
        try:
            data = check_success(response, "INITIALIZE UPDATE") if len(response) == 30 else response
            kdd, kvn, _, seq, cc, cryptogram = _parse_iu_response(data)
            sk = gp.scp02_session_keys(resolve_keys(self._keys_source, kdd), seq)
            expected = gp.scp02_card_cryptogram(sk.enc, self._host_challenge, seq, cc)
            if not cp.equal(expected, cryptogram):
                raise CryptogramMismatch(
                    "SCP02 card cryptogram does not verify: wrong keys (or KVN/diversification); "
                    "do not retry EXTERNAL AUTHENTICATE with these keys"
                )
        except Exception:
            self._state.fire(Event.FAIL)
            raise
        self._state.fire(Event.CARD_AUTHENTICATED)
        self._info = SessionInfo(2, self.i, kvn, kdd, seq, self.security_level)
        self._sk = sk
        host_cryptogram = gp.scp02_host_cryptogram(sk.enc, self._host_challenge, seq, cc)
        self._sm = Scp02Messaging(sk, self.i, C_MAC)  # EXTERNAL AUTHENTICATE is always MACed
        ext = CommandAPDU(0x80, 0x82, self.security_level, 0x00, host_cryptogram)
        wrapped = self._sm.wrap(ext)
        self._sm.level = self.security_level
        return wrapped

    def process_external_authenticate_response(self, response: bytes) -> None:
        """Open the session on 9000; otherwise close it and raise :class:`CardError`."""
        try:
            check_success(response, "EXTERNAL AUTHENTICATE")
        except Exception:
            self._state.fire(Event.FAIL)
            raise
        self._state.fire(Event.AUTHENTICATED)

    def wrap(self, apdu: bytes) -> bytes:
        """Secure a command APDU at the session's security level."""
        self._state.fire(Event.WRAP)
        assert self._sm is not None
        return self._sm.wrap(parse_command(apdu))

    def unwrap(self, response: bytes) -> bytes:
        """SCP02 levels 00/01/03 leave responses unprotected: checks the form, returns it."""
        self._state.fire(Event.UNWRAP)
        split_response(response)
        return response

    def encrypt_dgi_data(self, data: bytes) -> bytes:
        """TDES-ECB under the session DEK (``data`` already padded to 8-byte blocks)."""
        self._state.fire(Event.ENCRYPT_DATA)
        assert self._sk is not None
        return cp.ecb_encrypt("3DES", self._sk.dek, data)

    def close(self) -> None:
        self._state.fire(Event.CLOSE)


class Scp02Card:
    """Card (security domain) side of SCP02, for the virtual card. Failure counting is the
    caller's: :meth:`external_authenticate` answers ``6300`` on a bad host cryptogram and
    ``6982`` on a bad MAC; :meth:`unwrap_command` raises :class:`MacMismatch` (answer 6982)."""

    def __init__(
        self,
        static_keys: gp.StaticKeys,
        kvn: int,
        seq_counter: int,
        i: int = 0x55,
        *,
        kdd: bytes = bytes(10),
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
        self._challenge = challenge
        self._state = Session("SCP02 card")
        self._sk: gp.Scp02SessionKeys | None = None
        self._sm: Scp02Messaging | None = None
        self._hc = self._cc = b""
        self.security_level = 0

    @property
    def state(self) -> State:
        return self._state.state

    @property
    def is_open(self) -> bool:
        return self._state.state is State.OPEN

    def reset(self) -> None:
        """Card reset / new SELECT: drop the session."""
        if self._state.allowed(Event.CARD_REJECT):
            self._state.fire(Event.CARD_REJECT)

    def initialize_update(self, apdu: bytes) -> bytes:
        cmd = parse_command(apdu)
        if len(cmd.data) != 8:
            return b"\x67\x00"
        if cmd.p1 not in (0, self.kvn):
            return b"\x6a\x88"
        self._state.fire(Event.CARD_INITIALIZE_UPDATE)
        seq = (self.seq_counter & 0xFFFF).to_bytes(2, "big")
        self._sk = gp.scp02_session_keys(self._static, seq)
        self._hc, self._cc = cmd.data, self._challenge(6)
        cryptogram = gp.scp02_card_cryptogram(self._sk.enc, self._hc, seq, self._cc)
        self._sm = None
        return self.kdd + bytes([self.kvn, 0x02]) + seq + self._cc + cryptogram + _SW_OK

    def external_authenticate(self, apdu: bytes) -> bytes:
        if self._state.state is not State.AUTH_PENDING or self._sk is None:
            return b"\x69\x85"
        cmd = parse_command(apdu)
        level = cmd.p1
        if level not in LEVELS or len(cmd.data) != 16:
            self._state.fire(Event.CARD_REJECT)
            return b"\x6a\x86" if level not in LEVELS else b"\x67\x00"
        seq = (self.seq_counter & 0xFFFF).to_bytes(2, "big")
        sm = Scp02Messaging(self._sk, self.i, C_MAC)
        try:
            plain = sm.unwrap(cmd)
        except MacMismatch:
            self._state.fire(Event.CARD_REJECT)
            return b"\x69\x82"
        expected = gp.scp02_host_cryptogram(self._sk.enc, self._hc, seq, self._cc)
        if not cp.equal(expected, plain.data):
            self._state.fire(Event.CARD_REJECT)
            return b"\x63\x00"
        sm.level = level
        self._sm = sm
        self.security_level = level
        self.seq_counter = (self.seq_counter + 1) & 0xFFFF
        self._state.fire(Event.AUTHENTICATED)
        return _SW_OK

    def unwrap_command(self, apdu: bytes) -> bytes:
        """The plain command; a bad or missing C-MAC raises :class:`MacMismatch` and ends the
        session (the card answers 6982)."""
        self._state.fire(Event.UNWRAP_COMMAND)
        assert self._sm is not None
        try:
            return self._sm.unwrap(parse_command(apdu)).to_bytes()
        except MacMismatch:
            self._state.fire(Event.CARD_REJECT)
            raise

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """Levels 00/01/03 have no response protection: ``data || SW``."""
        self._state.fire(Event.WRAP_RESPONSE)
        return data + sw.to_bytes(2, "big")

    def decrypt_dgi_data(self, data: bytes) -> bytes:
        """TDES-ECB decryption under the session DEK."""
        self._state.fire(Event.DECRYPT_DATA)
        assert self._sk is not None
        return cp.ecb_decrypt("3DES", self._sk.dek, data)
