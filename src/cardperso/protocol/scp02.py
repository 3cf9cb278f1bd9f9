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
from cardperso.protocol.base import CardChannelBase, HostChannelBase
from cardperso.protocol.channel import (
    C_DEC,
    C_MAC,
    KeySource,
    SessionInfo,
    resolve_keys,
    split_response,
)

__all__ = ["LEVELS", "Scp02Card", "Scp02Host", "Scp02Messaging"]

LEVELS = (0x00, C_MAC, C_MAC | C_DEC)
_SUPPORTED_I_BITS = 0x01 | 0x04 | 0x10 | 0x40


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

    def wrap(self, cmd: CommandAPDU, *, count: bool = True) -> bytes:
        """The secured form of ``cmd`` (level 00 returns it unchanged). SCP02 keeps no
        command counter: ``count`` is there for the shared messaging interface."""
        if not self.level & C_MAC:
            return cmd.to_bytes()
        mac = self._mac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data)
        data = cmd.data
        if self.level & C_DEC and data:
            data = cp.cbc_encrypt("3DES", self._keys.enc, cp.pad_method2(data, 8))
        if len(data) + 8 > 255:
            raise UsageError("SCP02 encrypted command data too long for a short APDU")
        return CommandAPDU(cmd.cla | 0x04, cmd.ins, cmd.p1, cmd.p2, data + mac, cmd.le).to_bytes()

    def unwrap(self, cmd: CommandAPDU, *, count: bool = True) -> CommandAPDU:
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

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """Levels 00/01/03 have no response protection: ``data || SW``."""
        return data + sw.to_bytes(2, "big")

    def unwrap_response(self, response: bytes) -> bytes:
        """Responses are unprotected: checks the form (a status word), returns ``response``."""
        split_response(response)
        return response


def _parse_iu_response(data: bytes) -> tuple[bytes, int, int, bytes, bytes, bytes]:
    if len(data) != 28:
        raise DecodeError(f"SCP02 INITIALIZE UPDATE response is {len(data)} bytes, expected 28")
    kdd, kvn, scp = data[:10], data[10], data[11]
    if scp != 0x02:
        raise UsageError(f"card answered INITIALIZE UPDATE for SCP{scp:02X}, not SCP02")
    return kdd, kvn, scp, data[12:14], data[14:20], data[20:28]


class Scp02Host(HostChannelBase):
    """Host (off-card entity) side of an SCP02 session.

    Use: ``initialize_update()`` -> transmit -> ``process_initialize_update_response(resp)``
    (verifies the card cryptogram, raises :class:`CryptogramMismatch` and closes the session
    for good: never retry) -> transmit the returned EXTERNAL AUTHENTICATE ->
    ``process_external_authenticate_response(resp)`` -> ``wrap`` / ``unwrap`` (SCP02 levels
    00/01/03 leave responses unprotected: ``unwrap`` checks the form and returns them).
    """

    _NAME = _CHALLENGE_NAME = "SCP02"
    _IU_RESPONSE_WITH_SW = (30,)

    def __init__(
        self, static_keys: KeySource, security_level: int = C_MAC, i: int = 0x55, kvn: int = 0
    ) -> None:
        _check_i(i)
        _check_level(security_level)
        super().__init__(static_keys, security_level, kvn)
        self.i = i
        self._sk: gp.Scp02SessionKeys | None = None

    def _verify_card(self, data: bytes) -> tuple[SessionInfo, bytes]:
        kdd, kvn, _, seq, cc, cryptogram = _parse_iu_response(data)
        sk = gp.scp02_session_keys(resolve_keys(self._keys_source, kdd), seq)
        expected = gp.scp02_card_cryptogram(sk.enc, self._host_challenge, seq, cc)
        if not cp.equal(expected, cryptogram):
            raise CryptogramMismatch(
                "SCP02 card cryptogram does not verify: wrong keys (or KVN/diversification); "
                "do not retry EXTERNAL AUTHENTICATE with these keys"
            )
        self._sk = sk
        self._sm = Scp02Messaging(sk, self.i, C_MAC)
        host_cryptogram = gp.scp02_host_cryptogram(sk.enc, self._host_challenge, seq, cc)
        return SessionInfo(2, self.i, kvn, kdd, seq, self.security_level), host_cryptogram

    def _encrypt_dgi(self, data: bytes) -> bytes:
        """TDES-ECB under the session DEK."""
        assert self._sk is not None
        return cp.ecb_encrypt("3DES", self._sk.dek, data)


class Scp02Card(CardChannelBase[gp.Scp02SessionKeys]):
    """Card (security domain) side of SCP02, for the virtual card (see
    :class:`~cardperso.protocol.base.CardChannelBase` for the answers to failures)."""

    _NAME = "SCP02"

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
        super().__init__(static_keys, kvn, seq_counter, i, kdd, challenge)
        self._hc = self._cc = b""

    def _seq(self) -> bytes:
        return (self.seq_counter & 0xFFFF).to_bytes(2, "big")

    def _answer_initialize_update(self, host_challenge: bytes) -> bytes:
        seq = self._seq()
        self._sk = gp.scp02_session_keys(self._static, seq)
        self._hc, self._cc = host_challenge, self._challenge(6)
        cryptogram = gp.scp02_card_cryptogram(self._sk.enc, self._hc, seq, self._cc)
        return self.kdd + bytes([self.kvn, 0x02]) + seq + self._cc + cryptogram

    def _level_ok(self, level: int) -> bool:
        return level in LEVELS

    def _messaging(self, sk: gp.Scp02SessionKeys, level: int) -> Scp02Messaging:
        return Scp02Messaging(sk, self.i, level)

    def _host_cryptogram(self, sk: gp.Scp02SessionKeys) -> bytes:
        return gp.scp02_host_cryptogram(sk.enc, self._hc, self._seq(), self._cc)

    def _opened(self) -> None:
        self.seq_counter = (self.seq_counter + 1) & 0xFFFF

    def _decrypt_dgi(self, data: bytes) -> bytes:
        """TDES-ECB decryption under the session DEK."""
        assert self._sk is not None
        return cp.ecb_decrypt("3DES", self._sk.dek, data)
