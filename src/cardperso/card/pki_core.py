"""The PKI application (SM2 certificates) of the third-generation card, sans-IO, both chips.

How this works
--------------
One command processor, :class:`PkiCore`, over one non-volatile state, :class:`PkiData`: the GP
card's applet (:mod:`cardperso.card.pki`) and the native chip's PKI ADF
(:mod:`cardperso.card.pki_native`) each wrap it with their own secure messaging and tell it, per
command, whether personalization is open (``perso``) and whether the command arrived
enciphered (``confidential``). The command set is ``docs/pki.md``: SELECT of the ADF
``SS.CERT.ADF1`` and its files, READ / UPDATE BINARY, the PIN (hash, VERIFY with an SM4
challenge-response, CHANGE with the new PIN enciphered and MAC'd), GENERATE KEY PAIR, the key
envelope (SM2-encrypted SM4 key, then the private key under it) and imports, all as a public
social-security kiosk program sends them (native-cos.md source N8); SET PIN (ISO/IEC 7816-4
RESET RETRY COUNTER with new reference data) and SIGN (ISO/IEC 7816-8 PERFORM SECURITY
OPERATION: COMPUTE DIGITAL SIGNATURE, SM2 with the Z value of the default user ID) are this
project's choices where no public source shows the command.

SIGN's message may come in an ISO/IEC 7816-4 command chain (2005 edition 5.1.1.1: CLA b5 set on
every command but the last; :func:`cardperso.codec.apdu.chain`), each piece under the wrapper's
secure messaging: the core gathers the pieces in volatile memory (at most :data:`CHAIN_LIMIT`
bytes, ``6700`` beyond and the chain dropped) and signs on the last. Another command in the
middle of a chain answers ``6883`` (last command of the chain expected) and drops the chain;
chaining any other command answers ``6884`` (command chaining not supported).

Files (FID → content): ``0012`` signing public key ``CA 40 x y``, ``0013`` signing private key
(32 bytes, never readable), ``0014`` / ``0015`` the encryption pair, ``0018`` / ``0019`` the
signing / encryption certificates (binary, :data:`CERT_SIZE` bytes, DER then zeros).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardperso.card.applet import (
    SW_AUTH_BLOCKED,
    SW_CHAIN_LAST_EXPECTED,
    SW_CHAINING_NOT_SUPPORTED,
    SW_CONDITIONS,
    SW_INS_NOT_SUPPORTED,
    SW_NOT_FOUND,
    SW_REF_NOT_FOUND,
    SW_SECURITY,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    Command,
    Reply,
    Sw,
    need,
)
from cardperso.codec.apdu import CLA_CHAIN
from cardperso.crypto import primitives as cp
from cardperso.crypto.sm2 import Sm2PrivateKey, Sm2PublicKey
from cardperso.errors import CardPersoError
from cardperso.pki.card_app import (
    ADMIN_PIN,
    CERT_SIZE,
    ENC_CERT,
    ENC_PRIV,
    ENC_PUB,
    FILES,
    PKI_ADF_NAME,
    PKI_DDF_NAME,
    PRIVATE,
    SIGN_CERT,
    SIGN_LIMIT,
    SIGN_PRIV,
    SIGN_PUB,
    USER_PIN,
    change_pin_mac,
    pin_hash,
)

__all__ = [
    "CERT_SIZE",
    "CHAIN_LIMIT",
    "PKI_ADF_NAME",
    "PKI_DDF_NAME",
    "PkiCore",
    "PkiData",
    "PkiPin",
    "change_pin_mac",
    "pin_hash",
]

PAIRS = {SIGN_PUB: SIGN_PRIV, ENC_PUB: ENC_PRIV}
SW_END_OF_FILE = 0x6B00
#: The most data a command chain may gather (the applet's transient buffer, ours), the
#: longest SIGN message; the line's pre-flight checks every record's request against it.
CHAIN_LIMIT = SIGN_LIMIT
#: Commands (CLA without chaining and SM bits, INS) that may be chained: SIGN only.
CHAINABLE = frozenset({(0x00, 0x2A)})
#: CLA bits a chain's pieces may differ in: chaining (b5) and secure messaging (b4, b3).
_CHAIN_SM_BITS = CLA_CHAIN | 0x0C


@dataclass(slots=True)
class PkiPin:
    """One PIN (packed BCD) with its try limit and tries left; ``repr`` shows the counters only."""

    value: bytes = field(repr=False)
    limit: int = 3
    left: int = 3


@dataclass(slots=True)
class PkiData:
    """The PKI application's non-volatile memory (files by FID hex, PINs by reference hex)."""

    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    pins: dict[str, PkiPin] = field(default_factory=dict)
    personalized: bool = False


def _tlvs(data: bytes) -> dict[int, bytes]:
    """``tag len value`` items (one-byte tags; length ``82 hi lo`` or one byte); 6A80 if bad."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        need(pos + 2 <= len(data), SW_WRONG_DATA)
        tag, n = data[pos], data[pos + 1]
        pos += 2
        if n == 0x82:
            need(pos + 2 <= len(data), SW_WRONG_DATA)
            n, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif n == 0x81:
            need(pos + 1 <= len(data), SW_WRONG_DATA)
            n, pos = data[pos], pos + 1
        need(pos + n <= len(data), SW_WRONG_DATA)
        out[tag] = data[pos : pos + n]
        pos += n
    return out


def _fid(value: bytes | None) -> int:
    need(value is not None and len(value) == 2, SW_WRONG_DATA)
    assert value is not None
    fid = int.from_bytes(value, "big")
    need(fid in FILES, SW_NOT_FOUND)
    return fid


def _bcd_pin(data: bytes) -> bytes:
    digits = data.hex().upper().removesuffix("F")
    need(digits.isdigit() and 4 <= len(digits) <= 12, SW_WRONG_DATA)
    return data


class PkiCore:
    """The PKI application's commands over :class:`PkiData` (see the module docstring)."""

    def __init__(self, data: PkiData) -> None:
        self.data = data
        self.reset()

    def reset(self) -> None:
        """Drop volatile state (selection, power)."""
        self.ef: int | None = None
        self.challenge: bytes | None = None
        self.verified: set[int] = set()
        self.session_key: bytes | None = None
        #: The command chain being gathered: (CLA INS P1 P2 without chaining/SM bits, data).
        self.chain: tuple[bytes, bytes] | None = None

    # -- helpers ---------------------------------------------------------------------------------

    def _file(self, fid: int) -> bytes:
        return self.data.files.get(f"{fid:04X}", bytes(FILES[fid]))

    def _put(self, fid: int, value: bytes) -> None:
        self.data.files[f"{fid:04X}"] = value

    def _private(self, fid: int) -> Sm2PrivateKey:
        raw = self.data.files.get(f"{fid:04X}")
        need(raw is not None, SW_REF_NOT_FOUND)
        assert raw is not None
        try:
            return Sm2PrivateKey.from_bytes(raw)
        except CardPersoError:
            raise Sw(SW_REF_NOT_FOUND) from None

    def _pin(self, ref: int) -> PkiPin:
        pin = self.data.pins.get(f"{ref:02X}")
        need(pin is not None, SW_REF_NOT_FOUND)
        assert pin is not None
        if pin.left == 0:
            raise Sw(SW_AUTH_BLOCKED)
        return pin

    def _count(self, ref: int, pin: PkiPin, ok: bool) -> None:
        if ok:
            pin.left = pin.limit
            self.verified.add(ref)
            return
        pin.left = max(0, pin.left - 1)
        self.verified.discard(ref)
        raise Sw(0x63C0 | pin.left)

    def _take_challenge(self) -> bytes:
        challenge, self.challenge = self.challenge, None
        need(challenge is not None, SW_CONDITIONS)
        assert challenge is not None
        return challenge

    # -- command chaining (ISO/IEC 7816-4:2005 5.1.1.1) ---------------------------------------------

    @staticmethod
    def _chain_head(cmd: Command) -> bytes:
        return bytes((cmd.cla & ~_CHAIN_SM_BITS & 0xFF, cmd.ins, cmd.p1, cmd.p2))

    def check_chain(self, cmd: Command) -> None:
        """A command the wrapper handles itself (not passed to :meth:`process`): with a chain
        pending that this command does not continue, drop the chain and answer 6883."""
        if self.chain is not None and self.chain[0] != self._chain_head(cmd):
            self.chain = None
            raise Sw(SW_CHAIN_LAST_EXPECTED)

    def _chained(self, cmd: Command) -> Command | None:
        """``None`` while a chain goes on (the piece is kept, answer 9000); on its last piece
        (or an unchained command) the whole command."""
        self.check_chain(cmd)
        head = self._chain_head(cmd)
        pending, self.chain = self.chain, None
        more = bool(cmd.cla & CLA_CHAIN)
        if pending is None and not more:
            return cmd
        need((head[0] & 0xF3, cmd.ins) in CHAINABLE, SW_CHAINING_NOT_SUPPORTED)
        data = (pending[1] if pending else b"") + cmd.data
        need(len(data) <= CHAIN_LIMIT, SW_WRONG_LENGTH)
        if more:
            self.chain = (head, data)
            return None
        return Command(cmd.cla & ~CLA_CHAIN & 0xFF, cmd.ins, cmd.p1, cmd.p2, data, cmd.le,
                       cmd.raw)  # fmt: skip

    # -- dispatch --------------------------------------------------------------------------------

    def process(self, cmd: Command, *, perso: bool, confidential: bool) -> bytes | Reply:
        """One command; ``perso``: personalization is open (and the command authenticated);
        ``confidential``: its data arrived enciphered (secret imports need it)."""
        whole = self._chained(cmd)
        if whole is None:
            return b""
        cmd = whole
        key = (cmd.cla & 0xF3, cmd.ins)
        if key == (0x00, 0xA4):
            return self._select(cmd)
        if key == (0x00, 0xB0):
            return self._read_binary(cmd)
        if key == (0x00, 0x84):
            need(cmd.p1 == 0 and cmd.p2 == 0 and cmd.le == 16, SW_WRONG_P1P2)
            self.challenge = cp.random_bytes(16)
            return self.challenge
        if key == (0x80, 0xC4):
            return self._pin_hash(cmd)
        if key == (0x00, 0x20):
            return self._verify(cmd)
        if key == (0x80, 0x5E):
            return self._change_pin(cmd)
        if key == (0x00, 0x2A):
            return self._sign(cmd)
        if key == (0x00, 0x2C) and cmd.p1 == 0x03:
            return self._unblock(cmd)
        perso_commands = {
            (0x00, 0xD6): self._update_binary,
            (0x80, 0x40): self._generate,
            (0x00, 0x2C): self._set_pin,
            (0x80, 0x4E): self._open_envelope,
            (0x80, 0xC2): self._import_key,
        }
        handler = perso_commands.get(key)
        if handler is None:
            raise Sw(SW_INS_NOT_SUPPORTED)
        need(perso and not self.data.personalized, SW_SECURITY)
        if key in ((0x00, 0x2C), (0x80, 0x4E), (0x80, 0xC2)):
            need(confidential, SW_SECURITY)
        return handler(cmd)

    # -- files -----------------------------------------------------------------------------------

    def _select(self, cmd: Command) -> bytes:
        need(cmd.p1 == 0x00 and cmd.p2 in (0x00, 0x0C), SW_WRONG_P1P2)
        need(len(cmd.data) == 2, SW_WRONG_LENGTH)
        fid = int.from_bytes(cmd.data, "big")
        need(fid in FILES, SW_NOT_FOUND)
        self.ef = fid
        return b""

    def _binary(self, cmd: Command) -> tuple[int, int]:
        if cmd.p1 & 0x80:
            need(False, SW_WRONG_P1P2)  # no SFIs in this application
        need(self.ef is not None, 0x6986)
        assert self.ef is not None
        return self.ef, cmd.p1 << 8 | cmd.p2

    def _read_binary(self, cmd: Command) -> bytes:
        fid, offset = self._binary(cmd)
        need(fid not in PRIVATE, SW_SECURITY)
        content = self._file(fid)
        need(offset <= len(content), SW_WRONG_P1P2)
        length = cmd.le if cmd.le else len(content) - offset
        need(offset + length <= len(content), SW_END_OF_FILE)
        return content[offset : offset + length]

    def _update_binary(self, cmd: Command) -> bytes:
        fid, offset = self._binary(cmd)
        need(fid in (SIGN_CERT, ENC_CERT), SW_SECURITY)
        content = self._file(fid)
        need(offset + len(cmd.data) <= len(content), SW_WRONG_LENGTH)
        self._put(fid, content[:offset] + cmd.data + content[offset + len(cmd.data) :])
        return b""

    # -- PIN -------------------------------------------------------------------------------------

    def _pin_hash(self, cmd: Command) -> bytes:
        """``80 C4 01 03 Lc C1 len PIN``: the PIN's hash (N8)."""
        need(cmd.p1 == 0x01 and cmd.p2 == 0x03, SW_WRONG_P1P2)
        pin = _tlvs(cmd.data).get(0xC1)
        need(pin is not None, SW_WRONG_DATA)
        assert pin is not None
        return pin_hash(_bcd_pin(pin))

    def _verify(self, cmd: Command) -> bytes:
        """``00 20 01 ref 10 SM4(hash(PIN)[:16], challenge)`` (N8: ref 81 user, 00 admin)."""
        need(cmd.p1 == 0x01 and cmd.p2 in (USER_PIN, ADMIN_PIN), SW_WRONG_P1P2)
        pin = self._pin(cmd.p2)
        need(len(cmd.data) == 16, SW_WRONG_LENGTH)
        challenge = self._take_challenge()
        expected = cp.ecb_encrypt("SM4", pin_hash(pin.value)[:16], challenge)
        self._count(cmd.p2, pin, cp.equal(expected, cmd.data))
        return b""

    def _change_pin(self, cmd: Command) -> bytes:
        """``84 5E 01 ref 14``: SM4(hash(old)[:16], len ‖ new ‖ 80 00..) ‖ MAC (N8); a wrong old
        PIN (the MAC does not verify) counts as a failed verification."""
        need(cmd.p1 == 0x01 and cmd.p2 in (USER_PIN, ADMIN_PIN), SW_WRONG_P1P2)
        pin = self._pin(cmd.p2)
        need(len(cmd.data) == 20, SW_WRONG_LENGTH)
        challenge = self._take_challenge()
        key = pin_hash(pin.value)[:16]
        body, mac = cmd.data[:16], cmd.data[16:]
        header = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)))
        ok = cp.equal(change_pin_mac(key, challenge, header + body), mac)
        self._count(cmd.p2, pin, ok)
        plain = cp.ecb_decrypt("SM4", key, body)
        n = plain[0]
        need(1 <= n <= 8 and plain[1 + n : 2 + n] == b"\x80", SW_WRONG_DATA)
        pin.value = _bcd_pin(plain[1 : 1 + n])
        return b""

    def _unblock(self, cmd: Command) -> bytes:
        """``00 2C 03 81`` (ISO/IEC 7816-4 RESET RETRY COUNTER, counter only): the user PIN's
        tries back to its limit, once the administrator PIN was verified in this selection."""
        need(cmd.p2 == USER_PIN and not cmd.data, SW_WRONG_P1P2)
        need(ADMIN_PIN in self.verified, SW_SECURITY)
        pin = self.data.pins.get(f"{USER_PIN:02X}")
        need(pin is not None, SW_REF_NOT_FOUND)
        assert pin is not None
        pin.left = pin.limit
        return b""

    def _set_pin(self, cmd: Command) -> bytes:
        """Personalization: ``00 2C 02 ref Lc limit ‖ PIN`` (ISO/IEC 7816-4 RESET RETRY COUNTER,
        new reference data; the try limit first is this project's)."""
        need(cmd.p1 == 0x02 and cmd.p2 in (USER_PIN, ADMIN_PIN), SW_WRONG_P1P2)
        need(len(cmd.data) >= 3 and 1 <= cmd.data[0] <= 15, SW_WRONG_DATA)
        limit = cmd.data[0]
        self.data.pins[f"{cmd.p2:02X}"] = PkiPin(_bcd_pin(cmd.data[1:]), limit, limit)
        return b""

    # -- keys ------------------------------------------------------------------------------------

    def _generate(self, cmd: Command) -> bytes:
        """``80 40 00 00 08 C0 02 pub C2 02 priv`` (N8): a fresh pair in the two files; the
        answer is the public key file's content ``CA 40 x y`` (N8 reads it with READ BINARY)."""
        need(cmd.p1 == 0 and cmd.p2 == 0, SW_WRONG_P1P2)
        items = _tlvs(cmd.data)
        pub, priv = _fid(items.get(0xC0)), _fid(items.get(0xC2))
        need(PAIRS.get(pub) == priv, SW_WRONG_DATA)
        key = Sm2PrivateKey.generate()
        self._put(priv, key.to_bytes())
        self._put(pub, b"\xca\x40" + key.public_key.to_bytes()[1:])
        del key
        return self._file(pub)

    def _open_envelope(self, cmd: Command) -> bytes:
        """``80 4E 00 01 Lc C2 02 priv C1 82 len (x ‖ y ‖ C3 ‖ C2)``: SM2-decrypt the envelope's
        SM4 key with the private key in ``priv`` (GM/T 0016 ECCCIPHERBLOB order, N8); the key
        stays in volatile memory for the next import."""
        need(cmd.p1 == 0 and cmd.p2 == 1, SW_WRONG_P1P2)
        items = _tlvs(cmd.data)
        priv = _fid(items.get(0xC2))
        need(priv in PRIVATE, SW_WRONG_DATA)
        blob = items.get(0xC1, b"")
        need(len(blob) == 64 + 32 + 16, SW_WRONG_DATA)
        try:
            self.session_key = self._private(priv).decrypt(b"\x04" + blob)
        except CardPersoError:
            raise Sw(SW_WRONG_DATA) from None
        return b""

    def _import_key(self, cmd: Command) -> bytes:
        """``80 C2 40 00 (C0 02 pub CA 40 x y)`` a public key; ``80 C2 C0 01 (C2 02 priv CB 20
        SM4(k, d))`` its private key, enciphered under the envelope's key (N8), or ``80 C2 C0
        00 (C2 02 priv CB 20 d)`` in clear inside the enciphered channel (ours: a pair the issuer
        made, when the chip does not generate). The private key must match the public key
        already imported (6A80 otherwise)."""
        items = _tlvs(cmd.data)
        if (cmd.p1, cmd.p2) == (0x40, 0x00):
            pub = _fid(items.get(0xC0))
            point = items.get(0xCA, b"")
            need(pub in PAIRS and len(point) == 64, SW_WRONG_DATA)
            try:
                Sm2PublicKey.from_bytes(b"\x04" + point)
            except CardPersoError:
                raise Sw(SW_WRONG_DATA) from None
            self._put(pub, b"\xca\x40" + point)
            return b""
        need((cmd.p1, cmd.p2) in ((0xC0, 0x01), (0xC0, 0x00)), SW_WRONG_P1P2)
        priv = _fid(items.get(0xC2))
        secret = items.get(0xCB, b"")
        need(priv in PRIVATE and len(secret) == 32, SW_WRONG_DATA)
        pub = next(p for p, q in PAIRS.items() if q == priv)
        if cmd.p2 == 0x01:  # under the envelope's SM4 key (N8)
            key, self.session_key = self.session_key, None
            need(key is not None, SW_CONDITIONS)
            assert key is not None
            d = cp.ecb_decrypt("SM4", key, secret)
        else:  # P2 00 (ours): in clear inside the enciphered channel (an issuer-made pair)
            d = secret
        try:
            pair = Sm2PrivateKey.from_bytes(d)
        except CardPersoError:
            raise Sw(SW_WRONG_DATA) from None
        need(cp.equal(b"\xca\x40" + pair.public_key.to_bytes()[1:], self._file(pub)), SW_WRONG_DATA)
        self._put(priv, d)
        return b""

    def _sign(self, cmd: Command) -> bytes:
        """``00 2A 9E 9A Lc message``: SM2 signature ``r ‖ s`` of SM3(Z ‖ message), Z of the
        signing public key and the default user ID; only after the user PIN was verified."""
        need(cmd.p1 == 0x9E and cmd.p2 == 0x9A, SW_WRONG_P1P2)
        need(USER_PIN in self.verified, SW_SECURITY)
        need(bool(cmd.data), SW_WRONG_LENGTH)
        return self._private(SIGN_PRIV).sign(cmd.data)

    def end_personalization(self) -> None:
        """Close personalization: the signing pair, its certificate and the user PIN must be
        there (6985 otherwise)."""
        files = self.data.files
        need(f"{SIGN_PRIV:04X}" in files and f"{SIGN_CERT:04X}" in files, SW_CONDITIONS)
        need(f"{USER_PIN:02X}" in self.data.pins, SW_CONDITIONS)
        self.data.personalized = True
