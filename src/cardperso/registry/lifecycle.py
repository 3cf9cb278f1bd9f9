"""A cardholder's application and its card, from acceptance to issuance: one transition table.

An application is accepted at a service point, audited, compared with the population and bank
databases, registered against the provincial card database (which allocates its card number),
made at the factory, given a bank account, and issued to the cardholder. After registration the
application *is* its card: the state below is the card's state too::

    accepted ─audit─▶ audited ─compare_ok─▶ compared ─register─▶ registered ─export─▶ in_production
       │                 │                                          ▲                    │
       └─reject─▶ rejected └─compare_fail─▶ returned                └─production_failed──┤
                                                                                       produced
    issued ◀─issue─ ready_for_collection ◀─notify─ account_opened ◀─account_open─ personalized
                           ▲                                                        │   │
                           └──────────────── notify_temporary ──────────────────────┘   │
                                                                                  account_fail
    account_failed ─export_temporary─▶ in_production (SSSE-only profile) ◀──────────────┘

    in_production ─prep_reject─▶ prep_rejected ─requeue─▶ registered
                                              └─requeue_temporary─▶ account_failed

``confirm`` (``accepted → accepted``) records a signature on the registration form at a
service point: an application accepted there waits for both before its audit.

``prep_rejected``: data preparation rejected the exported record (``registry import-rejects``:
a duplicate PAN, a photo gone missing…). It does not go back into a batch by itself, since the
same data would be rejected again: the centre either requeues it once the cause is fixed
outside the application (a restored photo; the other record of a duplicate was the wrong one),
or cancels it and has a corrected application imported, which goes through audit and
comparison again.

An issued card reported lost is ``suspended`` (挂失: its account blocked at the bank); found
again it is restored (解挂) to ``issued``; not found, it is re-issued (补卡): cancelled,
and a new application for the same person names it as the card it replaces::

    issued ─suspend─▶ suspended ─restore─▶ issued
                          └─cancel (re-issue)─▶ cancelled

``cancel`` (a duplicate replaced by a new card, a lost card, a withdrawn application) ends any
state that is not already final. ``returned`` (comparison failed: back to the insured unit with
the reason), ``rejected`` and ``cancelled`` are final; ``issued`` is final but for a loss. Every change goes through
:func:`next_state`; the registry records each one (who, when, why) in ``reg_transitions``.
"""

from __future__ import annotations

from typing import Final

from cardperso.errors import IllegalTransition

ACCEPTED = "accepted"
AUDITED = "audited"
COMPARED = "compared"
REGISTERED = "registered"
IN_PRODUCTION = "in_production"
PERSONALIZED = "personalized"
ACCOUNT_OPENED = "account_opened"
READY = "ready_for_collection"
ISSUED = "issued"
RETURNED = "returned"
REJECTED = "rejected"
CANCELLED = "cancelled"
ACCOUNT_FAILED = "account_failed"
PREP_REJECTED = "prep_rejected"
SUSPENDED = "suspended"

#: The main path, in order (the stages of ``registry stats``), then the side states.
STATES: Final = (
    ACCEPTED,
    AUDITED,
    COMPARED,
    REGISTERED,
    IN_PRODUCTION,
    PREP_REJECTED,
    PERSONALIZED,
    ACCOUNT_OPENED,
    ACCOUNT_FAILED,
    READY,
    ISSUED,
    SUSPENDED,
    RETURNED,
    REJECTED,
    CANCELLED,
)
FINAL: Final = frozenset({ISSUED, RETURNED, REJECTED, CANCELLED})
#: States in which a card exists (registered and after) and has not been cancelled.
WITH_CARD: Final = frozenset(
    {
        REGISTERED,
        IN_PRODUCTION,
        PREP_REJECTED,
        PERSONALIZED,
        ACCOUNT_OPENED,
        ACCOUNT_FAILED,
        READY,
        ISSUED,
        SUSPENDED,
    }
)
#: States counted against the time target (not yet notified for collection, not final).
PENDING: Final = frozenset(
    {
        ACCEPTED,
        AUDITED,
        COMPARED,
        REGISTERED,
        IN_PRODUCTION,
        PREP_REJECTED,
        PERSONALIZED,
        ACCOUNT_OPENED,
        ACCOUNT_FAILED,
    }
)

MACHINE = "application"

#: (state, event) → next state. Everything that changes an application's state goes through
#: :func:`next_state`.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (ACCEPTED, "audit"): AUDITED,
    (ACCEPTED, "reject"): REJECTED,
    (ACCEPTED, "confirm"): ACCEPTED,  # a signature on the registration form (no change)
    (AUDITED, "compare_ok"): COMPARED,
    (AUDITED, "compare_fail"): RETURNED,
    (COMPARED, "register"): REGISTERED,
    (REGISTERED, "export"): IN_PRODUCTION,
    (IN_PRODUCTION, "produced"): PERSONALIZED,
    (IN_PRODUCTION, "production_failed"): REGISTERED,
    (IN_PRODUCTION, "prep_reject"): PREP_REJECTED,
    (PREP_REJECTED, "requeue"): REGISTERED,
    (PREP_REJECTED, "requeue_temporary"): ACCOUNT_FAILED,
    (PERSONALIZED, "account_open"): ACCOUNT_OPENED,
    (PERSONALIZED, "account_fail"): ACCOUNT_FAILED,
    (PERSONALIZED, "notify_temporary"): READY,
    (ACCOUNT_FAILED, "export_temporary"): IN_PRODUCTION,
    (ACCOUNT_OPENED, "notify"): READY,
    (READY, "issue"): ISSUED,
    (ISSUED, "suspend"): SUSPENDED,
    (SUSPENDED, "restore"): ISSUED,
    **{(s, "cancel"): CANCELLED for s in STATES if s not in (RETURNED, REJECTED, CANCELLED)},
}


def next_state(state: str, event: str) -> str:
    """The state after ``event``; :class:`IllegalTransition` when the table does not allow it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(MACHINE, state, event) from None


def events_from(state: str) -> list[str]:
    """The events the table allows in ``state`` (for messages and tests)."""
    return sorted(e for (s, e) in TRANSITIONS if s == state)
