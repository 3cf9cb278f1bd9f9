"""What SCP02 and SCP03 do the same way, written once: the session life cycle of both sides.

How this works
--------------
:class:`HostChannelBase` and :class:`CardChannelBase` hold the steps both protocols share:
state-machine events, the INITIALIZE UPDATE / EXTERNAL AUTHENTICATE exchange, dispatch of
wrap and unwrap to the session's :class:`Messaging` object, and what a failure does to the
session. Each protocol fills in a few primitives: verify the card (host) or answer INITIALIZE
UPDATE (card), the host cryptogram, the messaging object, the DEK cipher. The C-MAC / C-DEC
code itself stays in each protocol's messaging class, shared by its host and card side.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import MacMismatch, UsageError
from cardperso.protocol.channel import (
    C_MAC,
    KeySource,
    SessionInfo,
    check_success,
    parse_command,
)
from cardperso.protocol.session import Event, Session, State

__all__ = ["CardChannelBase", "HostChannelBase", "Messaging"]

SW_OK = b"\x90\x00"

K = TypeVar("K")


class Messaging(Protocol):
    """Secure messaging of one session (the C-MAC chain and its keys), used by both sides."""

    level: int

    def wrap(self, cmd: CommandAPDU, *, count: bool = True) -> bytes: ...

    def unwrap(self, cmd: CommandAPDU, *, count: bool = True) -> CommandAPDU: ...

    def wrap_response(self, data: bytes, sw: int) -> bytes: ...

    def unwrap_response(self, response: bytes) -> bytes: ...


class _SessionHolder:
    _state: Session

    @property
    def state(self) -> State:
        return self._state.state

    @property
    def is_open(self) -> bool:
        return self._state.state is State.OPEN


class HostChannelBase(_SessionHolder, ABC):
    """Host side: the life cycle of :class:`~cardperso.protocol.channel.SecureChannel`.

    Subclasses set :attr:`_NAME` and :attr:`_IU_RESPONSE_WITH_SW` and implement
    :meth:`_verify_card` and :meth:`_encrypt_dgi`."""

    #: "SCP02" / "SCP03": the state machine's name and the start of error messages.
    _NAME: ClassVar[str]
    #: How the host challenge is named in its error message.
    _CHALLENGE_NAME: ClassVar[str]
    #: Lengths of an INITIALIZE UPDATE response that still carries its status word.
    _IU_RESPONSE_WITH_SW: ClassVar[tuple[int, ...]]

    def __init__(self, static_keys: KeySource, security_level: int, kvn: int) -> None:
        self._keys_source = static_keys
        self.security_level = security_level
        self.kvn = kvn
        self._state = Session(f"{self._NAME} host")
        self._host_challenge = b""
        self._info: SessionInfo | None = None
        self._sm: Messaging | None = None

    @property
    def session(self) -> SessionInfo | None:
        """Session facts (no keys) once INITIALIZE UPDATE was answered, else None."""
        return self._info

    def initialize_update(self, host_challenge: bytes | None = None) -> bytes:
        """``80 50 KVN 00 08 <host challenge> 00`` (a random challenge unless one is given)."""
        hc = cp.random_bytes(8) if host_challenge is None else host_challenge
        if len(hc) != 8:
            raise UsageError(f"{self._CHALLENGE_NAME} host challenge must be 8 bytes")
        self._state.fire(Event.INITIALIZE_UPDATE)
        self._host_challenge = hc
        return CommandAPDU(0x80, 0x50, self.kvn, 0x00, hc, 256).to_bytes()

    @abstractmethod
    def _verify_card(self, data: bytes) -> tuple[SessionInfo, bytes]:
        """Parse the INITIALIZE UPDATE response data, derive the session keys, verify the card
        cryptogram (raise :class:`CryptogramMismatch`), set :attr:`_sm` at level C-MAC and
        return the session facts and the host cryptogram."""

    def process_initialize_update_response(self, response: bytes) -> bytes:
        """Verify the card cryptogram and return the EXTERNAL AUTHENTICATE APDU. ``response``
        may end with its status word (9000) or be the bare data bytes. Any failure closes the
        session for good."""
        if self._state.state is not State.INIT_SENT:
            self._state.fire(Event.CARD_AUTHENTICATED)  # raises IllegalTransition
        try:
            if len(response) in self._IU_RESPONSE_WITH_SW:
                response = check_success(response, "INITIALIZE UPDATE")
            info, host_cryptogram = self._verify_card(response)
        except Exception:
            self._state.fire(Event.FAIL)
            raise
        self._state.fire(Event.CARD_AUTHENTICATED)
        self._info = info
        assert self._sm is not None
        ext = CommandAPDU(0x80, 0x82, self.security_level, 0x00, host_cryptogram)
        wrapped = self._sm.wrap(ext, count=False)  # EXTERNAL AUTHENTICATE is always MACed
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
        """Check and decrypt a response as the level says (``data || SW``); a bad R-MAC raises
        :class:`MacMismatch` and closes the session."""
        self._state.fire(Event.UNWRAP)
        assert self._sm is not None
        try:
            return self._sm.unwrap_response(response)
        except MacMismatch:
            self._state.fire(Event.FAIL)
            raise

    @abstractmethod
    def _encrypt_dgi(self, data: bytes) -> bytes: ...

    def encrypt_dgi_data(self, data: bytes) -> bytes:
        """Sensitive data (already padded to whole blocks) encrypted under the DEK."""
        self._state.fire(Event.ENCRYPT_DATA)
        return self._encrypt_dgi(data)

    def close(self) -> None:
        self._state.fire(Event.CLOSE)


class CardChannelBase(_SessionHolder, ABC, Generic[K]):
    """Card side: the life cycle of :class:`~cardperso.protocol.channel.CardSecureChannel`,
    ``K`` being the protocol's session keys. Failure counting is the caller's:
    :meth:`external_authenticate` answers ``6300`` on a bad host cryptogram and ``6982`` on a
    bad MAC; :meth:`unwrap_command` raises :class:`MacMismatch` (answer 6982)."""

    _NAME: ClassVar[str]

    def __init__(
        self,
        static_keys: gp.StaticKeys,
        kvn: int,
        seq_counter: int,
        i: int,
        kdd: bytes,
        challenge: Callable[[int], bytes],
    ) -> None:
        if len(kdd) != 10:
            raise UsageError("KDD must be 10 bytes")
        self._static = static_keys
        self.kvn = kvn
        self.seq_counter = seq_counter
        self.i = i
        self.kdd = kdd
        self._challenge = challenge
        self._state = Session(f"{self._NAME} card")
        self._sk: K | None = None
        self._sm: Messaging | None = None
        self.security_level = 0

    def reset(self) -> None:
        """Card reset / new SELECT: drop the session."""
        if self._state.allowed(Event.CARD_REJECT):
            self._state.fire(Event.CARD_REJECT)

    @abstractmethod
    def _answer_initialize_update(self, host_challenge: bytes) -> bytes:
        """Derive the session keys into :attr:`_sk`; the response data (no status word)."""

    def initialize_update(self, apdu: bytes) -> bytes:
        cmd = parse_command(apdu)
        if len(cmd.data) != 8:
            return b"\x67\x00"
        if cmd.p1 not in (0, self.kvn):
            return b"\x6a\x88"
        self._state.fire(Event.CARD_INITIALIZE_UPDATE)
        data = self._answer_initialize_update(cmd.data)
        self._sm = None
        return data + SW_OK

    @abstractmethod
    def _level_ok(self, level: int) -> bool: ...

    @abstractmethod
    def _messaging(self, sk: K, level: int) -> Messaging: ...

    @abstractmethod
    def _host_cryptogram(self, sk: K) -> bytes: ...

    def _opened(self) -> None:
        """Hook: the session has just been authenticated."""

    def external_authenticate(self, apdu: bytes) -> bytes:
        if self._state.state is not State.AUTH_PENDING or self._sk is None:
            return b"\x69\x85"
        cmd = parse_command(apdu)
        level = cmd.p1
        if not self._level_ok(level) or len(cmd.data) != 16:
            self._state.fire(Event.CARD_REJECT)
            return b"\x67\x00" if self._level_ok(level) else b"\x6a\x86"
        sm = self._messaging(self._sk, C_MAC)
        try:
            plain = sm.unwrap(cmd, count=False)
        except MacMismatch:
            self._state.fire(Event.CARD_REJECT)
            return b"\x69\x82"
        if not cp.equal(self._host_cryptogram(self._sk), plain.data):
            self._state.fire(Event.CARD_REJECT)
            return b"\x63\x00"
        sm.level = level
        self._sm = sm
        self.security_level = level
        self._opened()
        self._state.fire(Event.AUTHENTICATED)
        return SW_OK

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
        """``data || SW`` protected as the session's level says."""
        self._state.fire(Event.WRAP_RESPONSE)
        assert self._sm is not None
        return self._sm.wrap_response(data, sw)

    @abstractmethod
    def _decrypt_dgi(self, data: bytes) -> bytes: ...

    def decrypt_dgi_data(self, data: bytes) -> bytes:
        """Sensitive data decrypted under the DEK."""
        self._state.fire(Event.DECRYPT_DATA)
        return self._decrypt_dgi(data)
