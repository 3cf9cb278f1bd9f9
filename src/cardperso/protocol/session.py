"""The secure-channel session state machine: ONE transition table for both sides.

States
------
``idle``          nothing under way (card: also after a failed authentication)
``init_sent``     host: INITIALIZE UPDATE built, its response not yet processed
``auth_pending``  host: card cryptogram verified, EXTERNAL AUTHENTICATE built and awaiting its
                  status; card: INITIALIZE UPDATE answered, awaiting EXTERNAL AUTHENTICATE
``open``          mutual authentication done: commands are wrapped / unwrapped
``closed``        host: the session failed or was closed; a host object never reopens (a
                  failed card cryptogram means wrong keys: stop, never retry blindly)

Every method of the SCP classes that changes or needs the state calls :meth:`Session.fire` with
its event; anything not in :data:`TRANSITIONS` raises :class:`~cardperso.errors.IllegalTransition`.
"""

from __future__ import annotations

from enum import StrEnum

from cardperso.errors import IllegalTransition

__all__ = ["TRANSITIONS", "Event", "Session", "State"]


class State(StrEnum):
    IDLE = "idle"
    INIT_SENT = "init_sent"
    AUTH_PENDING = "auth_pending"
    OPEN = "open"
    CLOSED = "closed"


class Event(StrEnum):
    # host side
    INITIALIZE_UPDATE = "initialize_update"  # host builds INITIALIZE UPDATE
    CARD_AUTHENTICATED = "card_authenticated"  # card cryptogram verified, EXT AUTH built
    AUTHENTICATED = "authenticated"  # EXTERNAL AUTHENTICATE succeeded (both sides)
    WRAP = "wrap"  # host wraps a command
    UNWRAP = "unwrap"  # host unwraps a response
    ENCRYPT_DATA = "encrypt_data"  # host encrypts sensitive data under the DEK
    FAIL = "fail"  # host: a check failed; the session is over
    CLOSE = "close"  # host: the caller ends the session
    # card side
    CARD_INITIALIZE_UPDATE = "card_initialize_update"  # card answers INITIALIZE UPDATE
    CARD_REJECT = "card_reject"  # card: failed authentication or MAC; session dropped
    UNWRAP_COMMAND = "unwrap_command"
    WRAP_RESPONSE = "wrap_response"
    DECRYPT_DATA = "decrypt_data"


S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    # host
    (S.IDLE, E.INITIALIZE_UPDATE): S.INIT_SENT,
    (S.INIT_SENT, E.CARD_AUTHENTICATED): S.AUTH_PENDING,
    (S.INIT_SENT, E.FAIL): S.CLOSED,
    (S.AUTH_PENDING, E.AUTHENTICATED): S.OPEN,
    (S.AUTH_PENDING, E.FAIL): S.CLOSED,
    (S.OPEN, E.WRAP): S.OPEN,
    (S.OPEN, E.UNWRAP): S.OPEN,
    (S.OPEN, E.ENCRYPT_DATA): S.OPEN,
    (S.OPEN, E.FAIL): S.CLOSED,
    (S.IDLE, E.CLOSE): S.CLOSED,
    (S.INIT_SENT, E.CLOSE): S.CLOSED,
    (S.AUTH_PENDING, E.CLOSE): S.CLOSED,
    (S.OPEN, E.CLOSE): S.CLOSED,
    (S.CLOSED, E.CLOSE): S.CLOSED,
    # card: a new INITIALIZE UPDATE always aborts whatever session was under way
    (S.IDLE, E.CARD_INITIALIZE_UPDATE): S.AUTH_PENDING,
    (S.AUTH_PENDING, E.CARD_INITIALIZE_UPDATE): S.AUTH_PENDING,
    (S.OPEN, E.CARD_INITIALIZE_UPDATE): S.AUTH_PENDING,
    (S.AUTH_PENDING, E.CARD_REJECT): S.IDLE,
    (S.OPEN, E.CARD_REJECT): S.IDLE,
    (S.IDLE, E.CARD_REJECT): S.IDLE,
    (S.OPEN, E.UNWRAP_COMMAND): S.OPEN,
    (S.OPEN, E.WRAP_RESPONSE): S.OPEN,
    (S.OPEN, E.DECRYPT_DATA): S.OPEN,
}


class Session:
    """Current state of one secure-channel object; transitions only through the table."""

    __slots__ = ("machine", "state")

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.state = State.IDLE

    def allowed(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: Event) -> State:
        """Apply ``event``; raise :class:`IllegalTransition` if the table has no such arrow."""
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise IllegalTransition(self.machine, str(self.state), str(event))
        self.state = nxt
        return nxt

    def __repr__(self) -> str:
        return f"<Session {self.machine} {self.state}>"
