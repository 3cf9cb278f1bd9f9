"""The virtual card (sans-IO): GP issuer security domain, SSSE and PBOC/e-cash applications.

The transports and bridges that serve it to readers live in :mod:`cardperso.sim`."""

from cardperso.card.faults import CardMute, CardRemoved, CardTorn, FaultPlan
from cardperso.card.vcard import VirtualCard

__all__ = ["CardMute", "CardRemoved", "CardTorn", "FaultPlan", "VirtualCard"]
