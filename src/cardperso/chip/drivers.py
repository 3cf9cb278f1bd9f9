"""Chip drivers chosen by ATR: the chip catalogue (``profiles/chips/*.yaml``) meets the code
that personalizes each kind of chip.

A station powers the card, reads its ATR and asks :meth:`DriverRegistry.choose` for the
driver **before it sends any command**: an ATR that no chip profile matches (or that two
match) raises :class:`~cardperso.chip.model.ChipFailure` at step ``ATR`` and the card goes to
the reject box untouched; the record is made again on the next card.

One driver per card operating system (``cos`` of the chip profile):

* ``gp`` - the GlobalPlatform personalization :func:`cardperso.chip.script.personalize` (or
  the line's own GP workflow, e.g. the two-stage factory's);
* ``native`` - :func:`cardperso.chip.native.personalize_native` (the SSSE on an FMCOS
  2.0-style chip; it needs the chip profile and the ATR: the chip serial is in it).

A driver declares the commands it sends; the registry refuses a chip profile whose command set
lacks one of them (at start-up, before the first card), and the plan's largest command data
field is capped by the chip's limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cardperso.chip.model import CardData, ChipFailure, ChipPlan
from cardperso.chip.native import NATIVE_COMMANDS, personalize_native
from cardperso.chip.pki import PKI_COMMANDS, PkiStep
from cardperso.chip.script import Steps, personalize
from cardperso.errors import ProfileError
from cardperso.keystore.base import KeyStore
from cardperso.profiles.chips import ChipProfile, load_catalogue

__all__ = ["GP_COMMANDS", "ChipDriver", "ChipWorkflow", "DriverRegistry", "load_drivers"]

ChipWorkflow = Callable[[CardData, ChipPlan, KeyStore], Steps]

#: What the GP driver sends (chip.script, chip.gp and chip.verify).
GP_COMMANDS = frozenset(
    {
        "SELECT",
        "GET DATA",
        "INITIALIZE UPDATE",
        "EXTERNAL AUTHENTICATE",
        "PUT KEY",
        "INSTALL",
        "STORE DATA",
        "SET STATUS",
        "INTERNAL AUTHENTICATE",
        "GET CHALLENGE",
        "READ RECORD",
        "GET PROCESSING OPTIONS",
        "GENERATE AC",
    }
)


@dataclass(frozen=True, slots=True)
class ChipDriver:
    """The driver of one chip family: its profile, and for GP chips the workflow that
    personalizes them (native chips: :func:`~cardperso.chip.native.personalize_native`)."""

    chip: ChipProfile
    workflow: ChipWorkflow
    #: The PKI application's personalization after the chip's own steps (profile ``pki``).
    pki: PkiStep | None = None

    @property
    def cos(self) -> str:
        return self.chip.cos

    def plan(self, plan: ChipPlan) -> ChipPlan:
        """``plan`` within this chip's limits (the largest command data field)."""
        if plan.max_data <= self.chip.max_data:
            return plan
        return dataclasses.replace(plan, max_data=self.chip.max_data)

    def personalize(
        self, card: CardData, plan: ChipPlan, keys: KeyStore, atr: bytes = b""
    ) -> Steps:
        """The chip steps of one card on this chip (a flow for ``chip.transport.drive``)."""
        if self.chip.cos == "native":
            flow = personalize_native(card, self.plan(plan), keys, self.chip, atr)
        else:
            flow = self.workflow(card, self.plan(plan), keys)
        if self.pki is None:
            return flow
        return self.pki.after(flow, card, self.plan(plan), self.chip, atr)


#: COS kind → the commands its driver sends (the chip profile must list them).
_COMMANDS: dict[str, frozenset[str]] = {"gp": GP_COMMANDS, "native": NATIVE_COMMANDS}


class DriverRegistry:
    """The drivers of a chip catalogue; :meth:`choose` picks one by ATR."""

    def __init__(
        self, chips: Iterable[ChipProfile], workflows: dict[str, ChipWorkflow] | None = None
    ) -> None:
        self.drivers: list[ChipDriver] = []
        #: Chips refused untouched (their transport key is missing, :meth:`without_keys`).
        self.disabled: set[str] = set()
        #: The PKI step of the product being made (set by the line before the first card).
        self.pki: PkiStep | None = None
        #: Chips refused because their profile lacks the PKI application's commands.
        self.without_pki: set[str] = set()
        gp_workflow = (workflows or {}).get("gp", personalize)
        for chip in chips:
            needed = _COMMANDS.get(chip.cos)
            if needed is None:
                raise ProfileError(f"{chip.source}: no driver for COS {chip.cos!r}")
            missing = sorted(needed - chip.commands)
            if missing:
                raise ProfileError(
                    f"{chip.source}: field 'commands': the {chip.cos} driver also needs "
                    + ", ".join(missing)
                )
            self.drivers.append(ChipDriver(chip, gp_workflow))

    def without_keys(self, keys: KeyStore) -> list[str]:
        """Disable the native chips whose transport key is not in ``keys`` (checked once,
        before the first card); returns their names. Such a chip is then refused untouched by
        :meth:`choose`, like an unknown one: the line goes on with the chips it can make."""
        names = set(keys.names())
        off = [d.chip.name for d in self.drivers if d.cos == "native"
               and d.chip.transport_key not in names]  # fmt: skip
        self.disabled.update(off)
        return off

    def use_pki(self, step: PkiStep | None) -> list[str]:
        """Personalize the PKI application after each chip's own steps (``None``: no PKI).
        Chips whose profile lacks a command the PKI step sends are refused untouched, like
        those without their transport key; returns their names (checked before the first card)."""
        self.pki = step
        if step is None:
            return []
        off = [d.chip.name for d in self.drivers if not d.chip.commands >= PKI_COMMANDS]
        self.disabled.update(off)
        self.without_pki.update(off)
        return off

    def choose(self, atr: bytes) -> ChipDriver:
        """The driver of the chip whose ATR this is; :class:`ChipFailure` (step ``ATR``) for an
        ATR no chip profile (or more than one) matches, or a disabled chip's - before any
        command is sent."""
        found = [d for d in self.drivers if d.chip.matches(atr)]
        if not found:
            raise ChipFailure(
                "ATR", f"unknown chip: ATR {atr.hex().upper()} matches no chip profile"
            )
        if len(found) > 1:
            names = ", ".join(d.chip.name for d in found)
            raise ChipFailure("ATR", f"ambiguous chip: ATR {atr.hex().upper()} matches {names}")
        chip = found[0].chip
        if chip.name in self.without_pki:
            raise ChipFailure("ATR", f"{chip.name} chip: its profile lacks the PKI commands")
        if chip.name in self.disabled:
            raise ChipFailure(
                "ATR", f"{chip.name} chip: its transport key {chip.transport_key!r} is not loaded"
            )
        return found[0] if self.pki is None else dataclasses.replace(found[0], pki=self.pki)


def load_drivers(
    workflows: dict[str, ChipWorkflow] | None = None, directory: Path | None = None
) -> DriverRegistry:
    """The drivers of the catalogue in ``profiles/chips`` (or ``directory``); ``workflows``
    ``{"gp": ...}`` replaces the GP workflow (e.g. the line's own, the two-stage factory's)."""
    return DriverRegistry(load_catalogue(directory), workflows)
