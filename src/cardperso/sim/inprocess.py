"""An in-process transport to a :class:`VirtualCard` with the shape of the PC/SC transport."""

from __future__ import annotations

from cardperso.card.vcard import VirtualCard
from cardperso.errors import TransportError


class InProcessTransport:
    """``connect`` / ``transmit(bytes) -> bytes`` / ``disconnect`` / ``atr`` over a card object.

    Handles nothing of T=0 (the virtual card never answers 61xx/6Cxx): a thin adapter.
    """

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self._atr: bytes | None = None

    @property
    def atr(self) -> bytes:
        if self._atr is None:
            raise TransportError("not connected")
        return self._atr

    @property
    def connected(self) -> bool:
        return self._atr is not None

    def connect(self) -> bytes:
        self._atr = self.card.power_on()
        return self._atr

    def disconnect(self) -> None:
        if self._atr is not None:
            self.card.power_off()
        self._atr = None

    def reconnect(self) -> bytes:
        """Warm reset."""
        self._atr = self.card.reset()
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        if self._atr is None:
            raise TransportError("not connected")
        return self.card.transmit(apdu)

    def __enter__(self) -> InProcessTransport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
