"""The transport shape and the one loop that drives a sans-IO chip flow over it.

A *flow* is a generator that yields command APDUs (bytes) and is sent the card's responses
(bytes, status word included); what it returns is the flow's result. :func:`drive` runs one
over anything with ``transmit(bytes) -> bytes``: a PC/SC reader, the in-process virtual card,
a recorded trace. :class:`ApduCount` counts the commands a sub-flow sends.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Protocol, TypeVar

__all__ = ["ApduCount", "Flow", "Transport", "drive"]

_T = TypeVar("_T")
Flow = Generator[bytes, bytes, _T]


class Transport(Protocol):
    """What the chip engine needs of a reader: one command in, one response out."""

    def transmit(self, apdu: bytes) -> bytes: ...


def drive(flow: Flow[_T], transmit: Callable[[bytes], bytes]) -> _T:
    """Run ``flow`` over ``transmit(apdu) -> response``; return what the flow returns."""
    try:
        apdu = next(flow)
        while True:
            apdu = flow.send(transmit(apdu))
    except StopIteration as done:
        result: _T = done.value
        return result


class ApduCount:
    """``yield from count(flow)`` passes ``flow`` through and counts its commands in ``n``."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, flow: Flow[_T]) -> Flow[_T]:
        try:
            apdu = next(flow)
            while True:
                self.n += 1
                apdu = flow.send((yield apdu))
        except StopIteration as done:
            result: _T = done.value
            return result
