"""Life-cycle state machines of the virtual card: ONE transition table (style.md section 5).

GlobalPlatform Card Specification 2.3, section 5 (card life cycle, 5.1; executable load files
and applications, 5.3): the card goes OP_READY -> INITIALIZED -> SECURED -> CARD_LOCKED ->
TERMINATED; an application goes INSTALLED -> SELECTABLE -> PERSONALIZED, and can be LOCKED and
unlocked back to the state it was locked from. Every change of ``CardState.lifecycle`` and of
``Application.lifecycle`` goes through :func:`transition`; anything the table does not allow
raises :class:`~cardperso.errors.IllegalTransition` (the card answers 6985).

The GP coding of each state (GET STATUS / SET STATUS P2) is in :data:`CODING`.
"""

from __future__ import annotations

from typing import Final

from cardperso.errors import IllegalTransition

CARD: Final = "card"
APP: Final = "application"

# (machine, state, event) -> new state
TABLE: Final[dict[tuple[str, str, str], str]] = {
    # -- card (GP 5.1) ---------------------------------------------------------------------
    (CARD, "OP_READY", "initialize"): "INITIALIZED",
    (CARD, "OP_READY", "secure"): "SECURED",
    (CARD, "INITIALIZED", "secure"): "SECURED",
    (CARD, "SECURED", "lock"): "CARD_LOCKED",
    (CARD, "CARD_LOCKED", "unlock"): "SECURED",
    (CARD, "OP_READY", "terminate"): "TERMINATED",
    (CARD, "INITIALIZED", "terminate"): "TERMINATED",
    (CARD, "SECURED", "terminate"): "TERMINATED",
    (CARD, "CARD_LOCKED", "terminate"): "TERMINATED",
    # -- application (GP 5.3) --------------------------------------------------------------
    (APP, "INSTALLED", "make_selectable"): "SELECTABLE",
    (APP, "INSTALLED", "personalize"): "PERSONALIZED",
    (APP, "SELECTABLE", "personalize"): "PERSONALIZED",
    (APP, "INSTALLED", "lock"): "LOCKED_INSTALLED",
    (APP, "SELECTABLE", "lock"): "LOCKED_SELECTABLE",
    (APP, "PERSONALIZED", "lock"): "LOCKED_PERSONALIZED",
    (APP, "LOCKED_INSTALLED", "unlock"): "INSTALLED",
    (APP, "LOCKED_SELECTABLE", "unlock"): "SELECTABLE",
    (APP, "LOCKED_PERSONALIZED", "unlock"): "PERSONALIZED",
}

#: GlobalPlatform life-cycle coding (GET STATUS / SET STATUS P2).
CODING: Final[dict[str, int]] = {
    "OP_READY": 0x01,
    "INITIALIZED": 0x07,
    "SECURED": 0x0F,
    "CARD_LOCKED": 0x7F,
    "TERMINATED": 0xFF,
    "INSTALLED": 0x03,
    "SELECTABLE": 0x07,
    "PERSONALIZED": 0x0F,
    "LOCKED_INSTALLED": 0x83,
    "LOCKED_SELECTABLE": 0x87,
    "LOCKED_PERSONALIZED": 0x8F,
}

#: SET STATUS P2 for the card -> the event that reaches that state.
CARD_SET_STATUS: Final[dict[int, str]] = {
    0x07: "initialize",
    0x0F: "secure",
    0x7F: "lock",
    0xFF: "terminate",
}


def transition(machine: str, state: str, event: str) -> str:
    """The state after ``event``; raise :class:`IllegalTransition` when the table forbids it."""
    new = TABLE.get((machine, state, event))
    if new is None:
        raise IllegalTransition(machine, state, event)
    return new


def allowed(machine: str, state: str, event: str) -> bool:
    return (machine, state, event) in TABLE


def app_event_for(state: str, p2: int) -> str:
    """The application event a SET STATUS P2 asks for, from the application's current state."""
    if p2 & 0x80:
        return "lock"
    if state.startswith("LOCKED_"):
        return "unlock"
    return {0x07: "make_selectable", 0x0F: "personalize"}.get(p2, f"set-{p2:02X}")


def card_event_for(state: str, p2: int) -> str:
    if state == "CARD_LOCKED" and p2 == 0x0F:
        return "unlock"
    return CARD_SET_STATUS.get(p2, f"set-{p2:02X}")


def selectable(state: str) -> bool:
    """Whether an application in ``state`` answers SELECT."""
    return state in ("SELECTABLE", "PERSONALIZED")


def card_usable(state: str) -> bool:
    """Whether applications other than the ISD may be selected (GP: not when locked)."""
    return state in ("OP_READY", "INITIALIZED", "SECURED")
