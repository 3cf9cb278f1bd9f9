"""APDU round trips through pyscard -> pcscd -> vpcd -> the cardperso bridge -> a card object.

Measures, on one reader of the PC/SC test lab (tests/fixtures_pcsc.py: reuses a pcscd that
serves the lab's readers, or starts one as root):

1. bare pyscard: ``scard.SCardTransmit`` in a loop with a prepared list (the floor);
2. pyscard's high-level ``CardConnection.transmit`` (what most tools use);
3. cardperso ``PcscTransport.transmit(bytes) -> bytes`` (the engine: bytes in/out, 61xx/6Cxx
   handling, error mapping, thread check) and its overhead over (1);
4. the same with the trace hook on (redaction + a no-op sink);
5. a real ``VirtualCard`` (GET DATA CPLC, the card's own processing included);
6. for comparison, a naive card program (plain blocking socket, no ``TCP_NODELAY`` and no
   ``TCP_QUICKACK``): what the bridge's socket options save.

The card for 1-4 is an echo card (zero card time), so the figures are the stack's own cost.
Run: ``.venv/bin/python benchmarks/bench_apdu_roundtrip.py [--apdus N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import benchenv
from smartcard import scard
from smartcard.CardConnection import CardConnection
from smartcard.System import readers

from cardperso.card import VirtualCard
from cardperso.devices.pcsc import ApduTrace, PcscTransport, wait_for_card, wait_for_removal
from fixtures_pcsc import EchoCard, open_lab

#: A short case-4 command (SELECT by AID, 8-byte AID) and its 10-byte answer from the echo card.
SHORT_APDU = bytes.fromhex("00A4040008A000000151000000")


def measure(
    variants: dict[str, Callable[[], object]], n: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Seconds per call of each variant: (median round, best round).

    Rounds are interleaved (variant A, B, C, then A, B, C again ...) so that machine load and
    CPU frequency changes hit every variant alike.
    """
    for fn in variants.values():  # warm up
        for _ in range(min(n, 500)):
            fn()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[label].append((time.perf_counter() - t0) / n)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


class NaiveCardProgram:
    """An echo card served the obvious way: blocking socket, default TCP options."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        stream = self.sock.makefile("rb")
        while True:
            head = stream.read(2)
            if len(head) < 2:
                return
            message = stream.read(int.from_bytes(head, "big"))
            if len(message) == 1:
                if message[0] != 0x04:
                    continue
                out = EchoCard.ATR
            else:
                out = message[5 : 5 + message[4]] + b"\x90\x00"
            self.sock.sendall(len(out).to_bytes(2, "big") + out)

    def stop(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join()
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apdus", type=int, default=5000, help="APDUs per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = args.apdus, args.rounds
    run = benchenv.start("bench_apdu_roundtrip")

    with open_lab(claim=1) as lab:
        slot = lab.slots[0]
        slot.insert(EchoCard())
        prepared = list(SHORT_APDU)

        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        rc, card, proto = scard.SCardConnect(
            ctx,
            slot.name,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        assert rc == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(rc)
        reader = next(r for r in readers() if str(r) == slot.name)
        conn = reader.createConnection()
        conn.connect(CardConnection.T1_protocol | CardConnection.T0_protocol)

        def sink(trace: ApduTrace) -> None:
            pass

        ours = PcscTransport(slot.name)
        traced = PcscTransport(slot.name, trace=sink)
        ours.connect()
        traced.connect()
        assert ours.transmit(SHORT_APDU) == SHORT_APDU[5:] + b"\x90\x00"
        results = measure(
            {
                "bare pyscard `scard.SCardTransmit` (prepared list)": lambda: scard.SCardTransmit(
                    card, proto, prepared
                ),
                "pyscard `CardConnection.transmit`": lambda: conn.transmit(prepared),
                "cardperso `PcscTransport.transmit`": lambda: ours.transmit(SHORT_APDU),
                "cardperso `PcscTransport.transmit`, trace hook on": lambda: traced.transmit(
                    SHORT_APDU
                ),
            },
            n,
            rounds,
        )
        ours.disconnect()
        traced.disconnect()
        conn.disconnect()
        conn.release()
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(ctx)
        slot.remove()

        # A real virtual card: its own processing included.
        with tempfile.TemporaryDirectory() as tmp:
            vcard = VirtualCard.create_blank(Path(tmp) / "bench.card")
            slot.insert(vcard)
            with PcscTransport(slot.name) as t:
                t.transmit(bytes.fromhex("00A4040008A000000151000000"))
                get_cplc = bytes.fromhex("80CA9F7F00")
                assert t.transmit(get_cplc)[-2:] == b"\x90\x00"
                results.update(
                    measure(
                        {
                            "cardperso `PcscTransport` → `VirtualCard` GET DATA CPLC": lambda: (
                                t.transmit(get_cplc)
                            )
                        },
                        max(n // 5, 100),
                        rounds,
                    )
                )
            slot.remove()

        # A naive card program on the same reader (few APDUs: each costs a delayed ACK).
        naive = NaiveCardProgram(slot.port)
        wait_for_card(slot.name, 5)
        with PcscTransport(slot.name) as t:
            results.update(
                measure(
                    {
                        "naive card program (no TCP_NODELAY / TCP_QUICKACK)": lambda: t.transmit(
                            SHORT_APDU
                        )
                    },
                    20,
                    3,
                )
            )
        naive.stop()
        wait_for_removal(slot.name, 5)

    print(f"\n{n} APDUs x {rounds} rounds (median round), short APDU {SHORT_APDU.hex().upper()}\n")
    print("| path | µs per APDU (median round) | best round | APDUs/s (median) |")
    print("|---|---:|---:|---:|")
    for label, (med, best) in results.items():
        print(f"| {label} | {med * 1e6:.1f} | {best * 1e6:.1f} | {1 / med:,.0f} |")
    bare = results["bare pyscard `scard.SCardTransmit` (prepared list)"]
    mine = results["cardperso `PcscTransport.transmit`"]
    for i, what in enumerate(("median", "best")):
        print(
            f"engine overhead over bare pyscard ({what} rounds): "
            f"{100 * (mine[i] - bare[i]) / bare[i]:+.1f}% ({(mine[i] - bare[i]) * 1e6:+.1f} µs)"
        )
    print("target: within 20%")
    print(f"short APDU round trip through pcscd + vpcd: {mine[0] * 1e3:.3f} ms; target: <= 0.2 ms")
    run.end()


if __name__ == "__main__":
    main()
