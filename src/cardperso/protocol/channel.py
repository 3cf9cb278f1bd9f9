"""What every GlobalPlatform secure channel offers, host side and card side.

Both SCP02 and SCP03 implement :class:`SecureChannel` (host) and :class:`CardSecureChannel`
(card). They are sans-IO: APDU bytes in, APDU bytes out. A driver transmits what the host
object returns; a virtual card feeds what it receives to the card object and sends back what
it returns. Counting failed EXTERNAL AUTHENTICATEs (and blocking the card) is the caller's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cardperso.codec import status
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CardError, DecodeError, UsageError

__all__ = [
    "C_DEC",
    "C_MAC",
    "R_ENC",
    "R_MAC",
    "CardSecureChannel",
    "KeySource",
    "SecureChannel",
    "SessionInfo",
    "check_success",
    "parse_command",
    "resolve_keys",
    "split_response",
]

#: Security level bits (GP Card Spec 10.6.1 / Amendment D 5.1).
C_MAC, C_DEC, R_MAC, R_ENC = 0x01, 0x02, 0x10, 0x20

#: Static keys, or a function from the card's 10-byte KDD to its keys (diversification).
KeySource = StaticKeys | Callable[[bytes], StaticKeys]


def resolve_keys(keys: KeySource, kdd: bytes) -> StaticKeys:
    """The card's static keys: ``keys`` itself or ``keys(kdd)``."""
    return keys if isinstance(keys, StaticKeys) else keys(kdd)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What an operator or a journal may know about a session (no key material)."""

    scp: int
    i: int
    kvn: int
    kdd: bytes
    sequence_counter: bytes
    security_level: int


def parse_command(apdu: bytes) -> CommandAPDU:
    """Parse a short command APDU (secure messaging here is defined for short APDUs)."""
    cmd = CommandAPDU.parse(apdu)
    if cmd.extended:
        raise UsageError("secure messaging is implemented for short APDUs only")
    return cmd


def split_response(response: bytes) -> tuple[bytes, int]:
    """``data || SW1 SW2`` -> (data, SW)."""
    if len(response) < 2:
        raise DecodeError("response shorter than a status word", offset=0, field="SW")
    return response[:-2], int.from_bytes(response[-2:], "big")


def check_success(response: bytes, command: str) -> bytes:
    """Return the data of a 9000 response; raise :class:`CardError` otherwise."""
    data, sw = split_response(response)
    if sw != 0x9000:
        raise CardError(sw, command, status.describe(sw))
    return data


@runtime_checkable
class SecureChannel(Protocol):
    """Host side of a secure channel."""

    @property
    def is_open(self) -> bool: ...

    @property
    def session(self) -> SessionInfo | None: ...

    def initialize_update(self, host_challenge: bytes | None = None) -> bytes: ...

    def process_initialize_update_response(self, response: bytes) -> bytes: ...

    def process_external_authenticate_response(self, response: bytes) -> None: ...

    def wrap(self, apdu: bytes) -> bytes: ...

    def unwrap(self, response: bytes) -> bytes: ...

    def encrypt_dgi_data(self, data: bytes) -> bytes: ...

    def close(self) -> None: ...


@runtime_checkable
class CardSecureChannel(Protocol):
    """Card side of a secure channel (for the virtual card)."""

    @property
    def is_open(self) -> bool: ...

    def initialize_update(self, apdu: bytes) -> bytes: ...

    def external_authenticate(self, apdu: bytes) -> bytes: ...

    def unwrap_command(self, apdu: bytes) -> bytes: ...

    def wrap_response(self, data: bytes, sw: int) -> bytes: ...

    def decrypt_dgi_data(self, data: bytes) -> bytes: ...

    def reset(self) -> None: ...
