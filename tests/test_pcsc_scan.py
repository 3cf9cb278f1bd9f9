"""Any PC/SC client sees the virtual cards: pcsc_scan (Debian's pcsc-tools) lists the lab reader
with a card whose ATR is the virtual card's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cardperso.card.vcard import VirtualCard

pytestmark = pytest.mark.pcsc


def test_pcsc_scan_sees_a_virtual_card(pcsc_slot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    exe = shutil.which("pcsc_scan")
    assert exe, "pcsc_scan missing: tools/bootstrap installs Debian's pcsc-tools"
    card = VirtualCard.create_blank(tmp_path / "c.json")
    pcsc_slot.insert(card)
    out = subprocess.run([exe, "-c", "-n"], capture_output=True, text=True, timeout=30).stdout
    atr = " ".join(f"{b:02X}" for b in card.atr)
    assert pcsc_slot.name in out
    assert atr in out, "pcsc_scan shows the virtual card's ATR"
