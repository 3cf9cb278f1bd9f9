"""Faults on demand for the virtual card: mute, removal mid-command, tearing, wrong ATR, latency.

The card itself stays sans-IO: a fault either changes what :meth:`VirtualCard.transmit` does
(raise :class:`CardMute` / :class:`CardRemoved` / :class:`CardTorn`, answer a different ATR) or
is *advice* for the transport that drives the card (:meth:`FaultPlan.latency` tells a bridge how
long to sleep before answering; the card never sleeps).

* ``mute``: every APDU raises :class:`CardMute` (the bridge sends nothing back).
* ``remove_after = N``: N more APDUs are answered, the next one raises :class:`CardRemoved`
  *in the middle of the command* (its state change is not committed) and the card stays
  removed (every later call raises) until :meth:`FaultPlan.reinsert`.
* ``tear_next_write``: the next APDU that changes non-volatile memory loses power just before
  its commit: the image file keeps the previous consistent state, the card is powered off and
  :class:`CardTorn` is raised. The flag clears itself (a tear happens once).
* ``wrong_atr``: the card answers this ATR instead of its own.
* ``latency_per_apdu`` / ``latency_per_byte`` (seconds): the latency model a bridge applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardperso.errors import TransportError


class CardMute(TransportError):
    """The card does not answer (mute card fault)."""


class CardRemoved(TransportError):
    """The card was removed from the reader (in the middle of a command)."""


class CardTorn(CardRemoved):
    """The card lost power during a non-volatile write; the previous state is kept."""


@dataclass(slots=True)
class FaultPlan:
    """Mutable fault switches of one virtual card (see the module docstring)."""

    mute: bool = False
    remove_after: int | None = None
    tear_next_write: bool = False
    wrong_atr: bytes | None = None
    latency_per_apdu: float = 0.0
    latency_per_byte: float = 0.0
    removed: bool = False

    def latency(self, command: bytes, response: bytes) -> float:
        """Seconds a bridge should wait before delivering ``response`` to ``command``."""
        return self.latency_per_apdu + self.latency_per_byte * (len(command) + len(response))

    def reinsert(self) -> None:
        """Put a removed card back into the reader (it still needs a power-on)."""
        self.removed = False
        self.remove_after = None

    def clear(self) -> None:
        """Switch every fault off."""
        self.mute = False
        self.remove_after = None
        self.tear_next_write = False
        self.wrong_atr = None
        self.latency_per_apdu = 0.0
        self.latency_per_byte = 0.0
        self.removed = False

    def before_power(self) -> None:
        """Called by the card before power-on: a removed card cannot be powered."""
        if self.removed:
            raise CardRemoved("card removed")

    def before_command(self) -> None:
        """Called by the card before it processes an APDU: raise the fault that applies."""
        if self.removed:
            raise CardRemoved("card removed")
        if self.mute:
            raise CardMute("card is mute")
        if self.remove_after is not None:
            if self.remove_after <= 0:
                self.removed = True
                raise CardRemoved("card removed in the middle of a command")
            self.remove_after -= 1
