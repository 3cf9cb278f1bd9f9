"""Card-printer interface and its first driver (Evolis-style command set over pyserial).

The :class:`CardPrinter` protocol is what the production line uses; a second printer family
would implement it over its own protocol. :class:`EvolisPrinter` turns NACK codes into
:class:`PrinterFault` errors that name what the operator must do.
"""

from __future__ import annotations

import time
from typing import Protocol

import serial

from cardperso.devices.evolis import NACK_CODES, Command, Reply, ReplyParser, encode_command
from cardperso.errors import DeviceError

#: What an operator should do for each NACK code.
OPERATOR_ACTIONS: dict[str, str] = {
    "C": "close the printer cover",
    "F": "refill the card feeder",
    "R": "replace the ribbon",
    "T": "clear the card jam (the card in the printer goes to the reject box)",
    "B": "empty the reject box",
    "W": "check the magnetic encoder; the card is rejected",
    "K": "check the magnetic encoder; the card is rejected",
    "D": "magnetic data is invalid for the track; check the profile",
    "1": "the printer did not understand a command (driver/firmware mismatch)",
    "2": "a command parameter was refused",
}

#: Faults that pause the station until an operator clears them (the others reject the card).
PAUSING_CODES = frozenset({"C", "F", "R", "T", "B"})


class PrinterFault(DeviceError):
    """The printer refused a command; ``code`` is the NACK code."""

    def __init__(self, command: str, code: str):
        self.command = command
        meaning = NACK_CODES.get(code, f"unknown error {code!r}")
        action = OPERATOR_ACTIONS.get(code, "see the printer manual")
        super().__init__(f"printer refused {command}: {meaning}; {action}", code=code)

    @property
    def pauses_station(self) -> bool:
        return self.code in PAUSING_CODES


class CardPrinter(Protocol):
    """What the line needs from a card printer."""

    def park_for_encoding(self) -> None: ...

    def print_and_eject(
        self, panels: dict[str, tuple[int, bytes]], tracks: dict[int, str], ribbon: str
    ) -> None: ...

    def reject(self) -> None: ...

    def status(self) -> dict[str, str]: ...

    def close(self) -> None: ...


class EvolisPrinter:
    """Evolis-style printer on a serial port (``/dev/ttyUSB0``, a pty path, ``socket://``)."""

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 10.0) -> None:
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"cannot open printer port {port}: {exc}") from None
        self._serial.reset_input_buffer()  # replies meant for a previous, interrupted session
        self._port = port
        self._timeout = timeout
        self._parser = ReplyParser()
        self._pending: list[Reply] = []

    def command(self, name: str, *params: str | bytes | int) -> Reply:
        """Send one command and wait for its reply; NACK raises :class:`PrinterFault`."""
        self._serial.write(encode_command(name, *params))
        reply = self._read_reply(name)
        if not reply.ok:
            raise PrinterFault(name, reply.code)
        return reply

    def _read_reply(self, name: str) -> Reply:
        deadline = time.monotonic() + self._timeout
        while not self._pending:
            if time.monotonic() > deadline:
                raise DeviceError(
                    f"printer on {self._port} did not answer {name} in {self._timeout:g} s"
                )
            chunk = self._serial.read(self._serial.in_waiting or 1)  # no wait past a reply
            if chunk:
                self._pending.extend(self._parser.feed(chunk))
        return self._pending.pop(0)

    # -- the CardPrinter protocol ---------------------------------------------------------
    def park_for_encoding(self) -> None:
        self.command("Ss")
        self.command("Sis")

    def print_and_eject(
        self, panels: dict[str, tuple[int, bytes]], tracks: dict[int, str], ribbon: str = "ymcko"
    ) -> None:
        self.command("Pr", ribbon)
        self.command("Sr")
        for panel, (levels, data) in panels.items():
            self.command("Db", panel, levels, data)
        if tracks:
            for number, text in sorted(tracks.items()):
                self.command("Dm", number, text)
            self.command("Smw")
            for number, text in sorted(tracks.items()):
                if self.command("Smr", number).value != text:
                    raise PrinterFault("Smr", "K")
        self.command("Se")

    def reject(self) -> None:
        self.command("Seb")

    def status(self) -> dict[str, str]:
        value = self.command("Rse").value
        return dict(item.split("=", 1) for item in value.split(",") if "=" in item)

    def send(self, cmd: Command) -> Reply:
        return self.command(cmd.name, *cmd.params)

    def close(self) -> None:
        self._serial.close()
