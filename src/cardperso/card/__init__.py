"""The virtual card (sans-IO): GP issuer security domain, SSSE and PBOC/e-cash applications."""

from cardperso.card.faults import CardMute, CardRemoved, CardTorn, FaultPlan
from cardperso.card.inprocess import InProcessTransport
from cardperso.card.vcard import VirtualCard

__all__ = ["CardMute", "CardRemoved", "CardTorn", "FaultPlan", "InProcessTransport", "VirtualCard"]
