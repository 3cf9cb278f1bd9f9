"""The error hierarchy: every error says whose fault it is.

One root, :class:`CardPersoError`, then one branch per party at fault:

* :class:`DataError` - bad input data: which record, which field, and why.
* :class:`UsageError` - the caller misused an API or a protocol (programming or configuration).
* :class:`CardError` - the card refused a command (status word and its meaning).
* :class:`TransportError` - the reader, cable or card transport failed (card removed, mute card).
* :class:`DeviceError` - a device faulted (printer ribbon, jam, cover open).
* :class:`SecurityError` - a cryptographic check failed (cryptogram or MAC mismatch, bad KCV).

Messages never carry key values, PINs or whole personal records: callers pass field names and
reasons, never the offending secret value.
"""

from __future__ import annotations


class CardPersoError(Exception):
    """Root of every error raised by cardperso."""

    #: CLI exit code for this family of errors.
    exit_code: int = 1


class DataError(CardPersoError):
    """Bad input data: names the record, the field and the reason a person can act on."""

    exit_code = 1

    def __init__(self, reason: str, *, field: str | None = None, record: str | int | None = None):
        self.reason = reason
        self.field = field
        self.record = record
        parts = []
        if record is not None:
            parts.append(f"record {record}")
        if field is not None:
            parts.append(f"field {field!r}")
        where = ", ".join(parts)
        super().__init__(f"{where}: {reason}" if where else reason)

    def at(self, *, record: str | int | None = None, field: str | None = None) -> DataError:
        """The same error located at a record and/or field (keeps what is already set)."""
        return type(self)(
            self.reason,
            field=self.field if self.field is not None else field,
            record=self.record if self.record is not None else record,
        )


class EncodingError(DataError):
    """A value cannot be encoded in the requested field format (too long, bad character...)."""


class DecodeError(DataError):
    """Bytes do not parse: names the offset and what was expected."""

    def __init__(self, reason: str, *, offset: int | None = None, field: str | None = None):
        self.offset = offset
        where = f"at offset {offset}: " if offset is not None else ""
        super().__init__(where + reason, field=field)


class ProfileError(DataError):
    """A profile file is invalid: names the file, line and field."""


class UsageError(CardPersoError):
    """The caller misused an API, a protocol state machine or a configuration."""

    exit_code = 2


class IllegalTransition(UsageError):
    """A state machine was asked for a transition its table does not allow."""

    def __init__(self, machine: str, state: str, event: str):
        self.machine, self.state, self.event = machine, state, event
        super().__init__(f"{machine}: {event!r} is not allowed in state {state!r}")


class KeyStoreError(CardPersoError):
    """A key store is missing a key, has a bad check value, or refuses an operation."""

    exit_code = 1


class SecurityError(CardPersoError):
    """A cryptographic verification failed."""

    exit_code = 1


class CryptogramMismatch(SecurityError):
    """A card or host cryptogram (or an application cryptogram) did not verify."""


class MacMismatch(SecurityError):
    """A MAC did not verify."""


class CardError(CardPersoError):
    """The card answered with an error status word."""

    exit_code = 3

    def __init__(self, sw: int, command: str = "", meaning: str | None = None):
        self.sw = sw
        self.command = command
        self.meaning = meaning or "see the status-word table"
        prefix = f"{command}: " if command else ""
        super().__init__(f"{prefix}card returned {sw:04X} ({meaning})")


class TransportError(CardPersoError):
    """The reader or the link to the card failed: no card, mute card, card removed, reset."""

    exit_code = 3


class DeviceError(CardPersoError):
    """A device (card printer, encoder) reported a fault an operator has to clear."""

    exit_code = 3

    def __init__(self, message: str, *, code: str | None = None):
        self.code = code
        super().__init__(message)


class SignatureMismatch(SecurityError):
    """A digital signature (SM2) did not verify."""
