"""The card job on the production line: one transition table, one place that changes state.

A job is one input record of a personalization file. It is made on a physical card; if that
card fails, the card goes to the reject box and the record is queued again to be made on a new
card, until the attempts run out::

    queued ──claim──▶ encoding ──chip_ok──▶ chip_done ──printed──▶ done
       ▲                 │                      │
       └──── retry ──────┴──── fail ────────────┘ (attempts left; the card is rejected)
                         └──── give_up ─────────┘──▶ failed   (no attempts left)

``release``: the station failed, not the card (the key store or the reader went away in the
middle of a card): the card is rejected as suspect, the record is queued again with its attempt
given back, and the line stops until the fault is fixed.

``recover_printed``: a ``chip_done`` job whose card is found in the output hopper (by its chip
serial) was finished before the crash and is ``done``.

``recover`` is what a resumed run does to a job found ``encoding`` or ``chip_done`` after a
crash (or whose claim expired because its line died): the card that was in the station is
suspect, so it is rejected and the record is made again (``queued``) or given up (``failed``).
"""

from __future__ import annotations

from typing import Final

from cardperso.errors import IllegalTransition

QUEUED, ENCODING, CHIP_DONE, DONE, FAILED = "queued", "encoding", "chip_done", "done", "failed"
STATES: Final = (QUEUED, ENCODING, CHIP_DONE, DONE, FAILED)
IN_FLIGHT: Final = frozenset({ENCODING, CHIP_DONE})

#: (state, event) → next state. Everything that changes a job's state goes through :func:`next_state`.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (QUEUED, "claim"): ENCODING,
    (ENCODING, "chip_ok"): CHIP_DONE,
    (CHIP_DONE, "printed"): DONE,
    (ENCODING, "retry"): QUEUED,
    (CHIP_DONE, "retry"): QUEUED,
    (ENCODING, "give_up"): FAILED,
    (CHIP_DONE, "give_up"): FAILED,
    (ENCODING, "recover"): QUEUED,
    (CHIP_DONE, "recover"): QUEUED,
    (ENCODING, "recover_give_up"): FAILED,
    (CHIP_DONE, "recover_give_up"): FAILED,
    (CHIP_DONE, "recover_printed"): DONE,
    (ENCODING, "release"): QUEUED,
    (CHIP_DONE, "release"): QUEUED,
}


def next_state(state: str, event: str) -> str:
    """The state after ``event``; :class:`IllegalTransition` when the table does not allow it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("card job", state, event) from None


def failure_event(attempts: int, max_attempts: int, *, recovering: bool = False) -> str:
    """The event for a failed card: retry on a new card while attempts remain."""
    if attempts < max_attempts:
        return "recover" if recovering else "retry"
    return "recover_give_up" if recovering else "give_up"
