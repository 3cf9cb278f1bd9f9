"""``sim serve --cards`` and ``sim cards --state`` serve native chip images as well as GP card
images (before: the directory scan took GP images only and skipped native chips as "other
files"); a native chip served behind pcscd/vpcd answers as itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cardperso.card.native import NativeCard, build_native_atr
from cardperso.card.vcard import VirtualCard
from cardperso.cli.sim import load_image, select_images
from cardperso.devices import pcsc
from cardperso.devices.pcsc import PcscTransport
from fixtures_pcsc import PRESENCE_TIMEOUT, LabSlot

ROOT = Path(__file__).parents[1]
SELECT_MF = bytes.fromhex("00A40000023F00")


def _cli(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "cardperso", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_the_image_scan_takes_native_chips(tmp_path: Path) -> None:
    NativeCard.create_blank(tmp_path / "B1B2B3B4.json", serial=bytes.fromhex("B1B2B3B4"))
    VirtualCard.create_blank(tmp_path / "A1A2A3A4.json", serial=bytes.fromhex("A1A2A3A4"))
    (tmp_path / "A1A2A3A4.tracks.json").write_text("{}")
    paths, total, others = select_images(tmp_path, ())
    assert [p.name for p in paths] == ["A1A2A3A4.json", "B1B2B3B4.json"]
    assert (total, others) == (2, 1)
    assert select_images(tmp_path, ("b1b2b3b4",))[0] == [tmp_path / "B1B2B3B4.json"]
    assert isinstance(load_image(tmp_path / "B1B2B3B4.json"), NativeCard)
    assert isinstance(load_image(tmp_path / "A1A2A3A4.json"), VirtualCard)


@pytest.mark.pcsc
def test_sim_serve_serves_a_native_chip(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    images = tmp_path / "done"
    images.mkdir()
    serial = bytes.fromhex("C1C2C3C4")
    NativeCard.create_blank(images / "C1C2C3C4.json", serial=serial, algorithm="3DES")
    proc = _cli("sim", "serve", "--cards", str(images), "--port", str(pcsc_slot.port))
    try:
        atr = pcsc.wait_for_card(pcsc_slot.name, 30)
        with PcscTransport(pcsc_slot.name) as t:
            assert t.transmit(SELECT_MF)[-2:] == b"\x90\x00"
            challenge = t.transmit(bytes.fromhex("0084000008"))
    finally:
        out = _stop(proc)
    assert atr == build_native_atr(serial, "3DES"), "the native chip answers as itself"
    assert len(challenge) == 10 and challenge[-2:] == b"\x90\x00"
    assert "C1C2C3C4.json" in out and "not card images" not in out
    pcsc.wait_for_removal(pcsc_slot.name, PRESENCE_TIMEOUT)
