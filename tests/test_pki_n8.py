"""The PKI application's commands as a public kiosk program sends them (issue 17).

Source N8 of /work/shared/reference/native-cos.md: leithergit/Z390Kylin,
``Evolis_Z390_printer/evolis_z390_printer.cpp`` (read, not copied): the strings below are the
APDUs that program writes to third-generation cards (hex literals in its source, data fields
elided where they are per card). The host's personalization of a native chip is recorded -
commands as sent, and the plain commands before the transport key's encryption - and each of
the program's commands must appear byte for byte (headers, Lc, tags, FIDs), the certificates in
its 0x70-byte pieces at its offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardperso.chip import pki as chip_pki
from cardperso.chip.drivers import load_drivers
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.transport import drive
from cardperso.prep.container import iter_records, read_header
from cardperso.profiles.loader import load_profile
from cardperso.protocol import fmcos
from cardperso.storage.db import Database
from pki_fixtures import make_lab
from test_native_driver import blank_native

#: N8's literals (whole commands, or a command's start where the rest is per card).
N8_WHOLE = [
    "00A404000C504B492EC9E7BBE1B1A3D5CF",  # SELECT "PKI.社会保障"
    "00A404000C53532E434552542E41444631",  # SELECT "SS.CERT.ADF1"
    "8040000008C0020012C2020013",  # generate the key pair into 0012 / 0013
    "00A40000020018",  # SELECT the signing certificate
    "00A40000020019",  # SELECT the encryption certificate
]
N8_START = {
    "0020018110": 16,  # VERIFY user PIN: 16 bytes of SM4(hash, challenge)
    "80C2400046C0020014CA40": 64,  # import the encryption public key x ‖ y
    "80C2C00126C2020015CB20": 32,  # import the encryption private key (under the SM4 key)
    "804E0001": None,  # the envelope: C2 02 0013 C1 82 00 len x ‖ y ‖ C3 ‖ C2
    "00D6000070": 0x70,  # certificate pieces at N8's offsets
    "00D6007070": 0x70,
    "00D600E070": 0x70,
    "00D6015070": 0x70,
}


def test_the_host_sends_the_kiosk_programs_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = make_lab(tmp_path, records=1)
    store = lab.store()
    profile = load_profile(lab.profile)
    with lab.perso.open("rb") as fh:
        header, _ = read_header(fh)
    body = next(b for _, b in iter_records(lab.perso, store))
    plain: list[str] = []
    original = fmcos.protect

    def recording(h: bytes, data: bytes, *args: Any, **kwargs: Any) -> bytes:
        plain.append((bytes((h[0] & 0xFB,)) + h[1:] + bytes((len(data),)) + data).hex().upper())
        return original(h, data, *args, **kwargs)

    monkeypatch.setattr(chip_pki.fmcos, "protect", recording)
    drivers = load_drivers()
    drivers.use_pki(chip_pki.pki_step(profile, store, Database(tmp_path / "j.db")))
    chip = blank_native(tmp_path / "n.json")
    atr = chip.power_on()
    sent: list[str] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        return chip.transmit(apdu)

    drive(drivers.choose(atr).personalize(card_data(header, body, 0), chip_plan(profile, header),
                                          store, atr), transmit)  # fmt: skip
    everything = sent + plain
    for whole in N8_WHOLE:
        assert whole in everything, whole
    for start, length in N8_START.items():
        found = [c for c in everything if c.startswith(start)]
        assert found, start
        if length is not None:
            assert all(len(c) == len(start) + 2 * length for c in found), (start, found)
    envelope = next(c for c in plain if c.startswith("804E0001"))
    assert envelope[10:24] == "C2020013C18200" and envelope[24:26] == "70", envelope[:30]
    last = [c for c in sent if c.startswith("00D601C0")]
    assert len(last) == 2, "each certificate's fifth piece at 01C0, as N8 writes it"
