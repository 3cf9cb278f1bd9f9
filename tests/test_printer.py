"""Evolis-style printer codec (byte by byte), the simulator core, and the driver over a real pty."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.devices.evolis import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Command,
    CommandParser,
    Reply,
    ReplyParser,
    encode_command,
    panel_bytes,
)
from cardperso.devices.printer import EvolisPrinter, PrinterFault
from cardperso.errors import DecodeError, DeviceError
from cardperso.sim.printer import PrinterCore, PrintJob, PtyPrinter

# -- codec: exact bytes (Evolis programming guide framing: ESC name ;params CR) --------------


def test_encode_simple_commands_exact_bytes() -> None:
    assert encode_command("Ss") == b"\x1bSs\r"
    assert encode_command("Pr", "ymcko") == b"\x1bPr;ymcko\r"
    assert encode_command("Dm", 2, "6212345678901234=3012") == b"\x1bDm;2;6212345678901234=3012\r"
    assert encode_command("Rlr", "p") == b"\x1bRlr;p\r"


def test_encode_unknown_command_names_it() -> None:
    with pytest.raises(DecodeError, match="Zz"):
        encode_command("Zz")


def test_panel_sizes_follow_geometry() -> None:
    assert (PANEL_WIDTH, PANEL_HEIGHT) == (648, 1016)
    assert panel_bytes(2) == 81 * 1016 == 82_296  # 1 bit per dot (card-printer.md)
    assert panel_bytes(256) == 648 * 1016
    with pytest.raises(DecodeError, match="panel levels must be a power of two >= 2, not 3"):
        panel_bytes(3)


def test_download_payload_may_contain_cr_and_is_read_by_length() -> None:
    payload = bytes([0x0D]) * panel_bytes(2)
    raw = encode_command("Db", "k", 2, payload) + encode_command("Se")
    cmds = list(CommandParser().feed(raw))
    assert [c.name for c in cmds] == ["Db", "Se"]
    assert cmds[0].params == (b"k", b"2", payload)


def test_missing_esc_after_cr_is_tolerated() -> None:
    cmds = list(CommandParser().feed(b"\x1bSs\rSis\r"))
    assert [c.name for c in cmds] == ["Ss", "Sis"]


def test_unknown_or_malformed_commands_parse_as_unknown() -> None:
    cmds = list(CommandParser().feed(b"\x1bXy;1\r\x1bPr\r\x1bDb;k\r"))
    assert [c.name for c in cmds] == ["?", "?", "?"]


@given(
    st.lists(
        st.sampled_from(
            [
                Command("Ss"),
                Command("Sis"),
                Command("Pr", (b"ymcko",)),
                Command("Dm", (b"1", b"%B6212345678901234^ZHANG/SAN^30121010000?")),
                Command(
                    "Db",
                    (
                        b"o",
                        b"2",
                        bytes(range(256)) * (panel_bytes(2) // 256) + bytes(panel_bytes(2) % 256),
                    ),
                ),
                Command("Se"),
            ]
        ),
        max_size=6,
    ),
    st.integers(min_value=1, max_value=70_000),
)
@settings(deadline=None, max_examples=60)
def test_parser_is_independent_of_chunking(cmds: list[Command], chunk: int) -> None:
    stream = b"".join(c.to_bytes() for c in cmds)
    chunk = chunk if chunk > 16 else 1  # byte-by-byte, or larger pieces
    parser = CommandParser()
    out: list[Command] = []
    for i in range(0, len(stream), chunk):
        out.extend(parser.feed(stream[i : i + chunk]))
    assert out == cmds, "parsed commands differ from the sent ones"


def test_reply_codec_byte_by_byte() -> None:
    stream = b"ACK\rACK;SIM-1.0\rNACKR\r"
    parser = ReplyParser()
    out: list[Reply] = []
    for b in stream:
        out.extend(parser.feed(bytes([b])))
    assert out == [Reply(True), Reply(True, "SIM-1.0"), Reply(False, code="R")]
    assert out[2].meaning == "ribbon out or broken"
    assert Reply(False, code="F").to_bytes() == b"NACKF\r"


# -- simulator core -------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.jobs: list[PrintJob] = []

    def card_parked(self, card_number: int, station: str) -> None:
        self.events.append(("parked", card_number, station))

    def card_left(self, card_number: int, destination: str, job: PrintJob) -> None:
        self.events.append(("left", card_number, destination))
        self.jobs.append(job)


def test_core_sequence_parks_prints_and_ejects() -> None:
    rec = Recorder()
    core = PrinterCore(feeder=2, events=rec)
    for cmd in (
        Command("Ss"),
        Command("Sis"),
        Command("Pr", (b"ymcko",)),
        Command("Dm", (b"2", b"123=45")),
    ):
        assert core.handle(cmd).ok
    assert core.position == "contact"
    assert core.handle(Command("Smw")).ok
    assert core.handle(Command("Smr", (b"2",))) == Reply(True, "123=45")
    assert core.handle(Command("Se")).ok
    assert rec.events == [("parked", 1, "contact"), ("left", 1, "output")]
    assert rec.jobs[0].written_tracks == {2: "123=45"} and core.feeder == 1


@pytest.mark.parametrize(
    ("fault", "command", "code"),
    [
        ("ribbon_out", "Se", "R"),
        ("ribbon_broken", "Se", "R"),
        ("jam", "Sis", "T"),
        ("cover_open", "Sis", "C"),
        ("feeder_empty", "Sis", "F"),
        ("reject_full", "Seb", "B"),
        ("mag_write_error", "Smw", "W"),
    ],
)
def test_every_fault_refuses_its_commands_until_cleared(
    fault: str, command: str, code: str
) -> None:
    core = PrinterCore(feeder=5)
    if command in ("Se", "Seb", "Smw"):
        assert core.handle(Command("Sis")).ok
    core.inject(fault)
    assert core.handle(Command(command)) == Reply(False, code=code)
    assert core.handle(Command(command)) == Reply(False, code=code)  # stays until cleared
    core.clear(fault)
    assert core.handle(Command(command)).ok


def test_auto_clearing_fault_and_empty_feeder() -> None:
    core = PrinterCore(feeder=1)
    core.inject("cover_open", auto_clear_after=1)
    assert not core.handle(Command("Sis")).ok
    assert core.handle(Command("Sis")).ok
    assert core.handle(Command("Seb")).ok and core.rejected == [1]
    assert core.handle(Command("Sis")) == Reply(False, code="F")  # no blank cards left


# -- driver over a real pseudo-terminal (pyserial opens it like a serial port) ---------------


def test_driver_over_pty_full_card_and_fault_messages() -> None:
    rec = Recorder()
    core = PrinterCore(feeder=3, events=rec)
    with PtyPrinter(core) as sim:
        printer = EvolisPrinter(sim.port, timeout=5)
        try:
            printer.park_for_encoding()
            assert core.position == "contact"
            panel = bytes(panel_bytes(2))
            printer.print_and_eject(
                {"k": (2, panel), "o": (2, panel)}, {1: "%BTEST?", 2: "6212=30"}, "ymcko"
            )
            assert rec.events[-1] == ("left", 1, "output")
            assert rec.jobs[-1].panels[("front", "k")] == (2, panel)
            assert printer.status()["feeder"] == "2"

            printer.park_for_encoding()
            core.inject("ribbon_out")
            with pytest.raises(PrinterFault, match="replace the ribbon") as info:
                printer.print_and_eject({"k": (2, panel)}, {}, "k")
            assert info.value.pauses_station and info.value.code == "R"
            core.clear()
            printer.reject()
            assert rec.events[-1] == ("left", 2, "reject")
        finally:
            printer.close()


def test_driver_reports_a_silent_printer() -> None:
    import os

    master, slave = os.openpty()
    try:
        printer = EvolisPrinter(os.ttyname(slave), timeout=0.3)
        with pytest.raises(DeviceError, match="did not answer"):
            printer.command("Rfv")
        printer.close()
    finally:
        os.close(master)
        os.close(slave)


def test_simulator_drops_a_command_left_incomplete_by_a_dead_sender() -> None:
    import os
    import time

    core = PrinterCore(feeder=1)
    with PtyPrinter(core) as sim:
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"\x1bDb;k;2;" + bytes(1000))  # a panel download cut short
            time.sleep(PtyPrinter.RECEIVE_TIMEOUT + 1.5)  # the simulator sees the silence
        finally:
            os.close(fd)
        printer = EvolisPrinter(sim.port, timeout=3)
        try:
            assert printer.command("Rsn").value == core.serial  # the line is usable again
        finally:
            printer.close()
