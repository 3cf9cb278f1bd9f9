"""The virtual card's GP issuer security domain, driven by the HOST classes of cardperso.protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card import VirtualCard
from cardperso.card.ssse import SSSE_NAME
from cardperso.codec import tlv
from cardperso.crypto import primitives as cp
from cardperso.crypto.gp import StaticKeys
from test_card_support import (
    PBOC_AID,
    Host,
    gp_test_keys,
    install_pboc,
    install_ssse,
    new_card,
    ssse_dgis,
)


@pytest.mark.parametrize("scp", ["02", "03"])
@pytest.mark.parametrize("level", [0x00, 0x01, 0x03])
def test_blank_card_authenticates_with_test_keys(tmp_path: Path, scp: str, level: int) -> None:
    host = Host(new_card(tmp_path, scp), scp)
    assert host.authenticate(level) == 0x9000
    data, sw = host.secure("80CA00E000")
    assert sw == 0x9000
    kit = tlv.parse_one(data)
    assert kit.tag == 0xE0 and kit.children is not None and len(kit.children) == 3
    # the key version of the GP test keys is FF
    assert all(c.value[1] == 0xFF for c in kit.children)


@pytest.mark.parametrize("level", [0x13, 0x33])
def test_scp03_rmac_and_renc_levels(tmp_path: Path, level: int) -> None:
    host = Host(new_card(tmp_path, "03"), "03")
    assert host.authenticate(level) == 0x9000
    data, sw = host.secure("80CA9F7F00")
    assert sw == 0x9000 and data[:2] == b"\x9f\x7f"
    assert host.secure("80CA9F7000")[1] == 0x6A88  # an error answer carries no R-MAC
    data, sw = host.secure("80CA00E000")
    assert sw == 0x9000 and data[0] == 0xE0


def test_get_data_cplc_and_card_data(tmp_path: Path) -> None:
    card = new_card(tmp_path, serial=bytes.fromhex("CAFEBABE"))
    host = Host(card)
    host.ok("00A4040008A000000151000000")
    cplc = tlv.parse_one(host.ok("80CA9F7F00"))
    assert len(cplc.value) == 42 and cplc.value[12:16] == bytes.fromhex("CAFEBABE")
    assert bytes.fromhex("CAFEBABE") in card.atr
    card_data = host.ok("80CA006600")
    assert card_data[0] == 0x66 and bytes.fromhex("2A864886FC6B040255") in card_data


def test_unique_serials(tmp_path: Path) -> None:
    a = VirtualCard.create_blank(tmp_path / "a.json")
    b = VirtualCard.create_blank(tmp_path / "b.json")
    assert a.serial != b.serial  # 4 random bytes: collision chance 2**-32


def test_wrong_keys_count_and_block_across_reload(tmp_path: Path) -> None:
    card = new_card(tmp_path, max_auth_failures=3)
    host = Host(card)
    wrong = StaticKeys(b"\x11" * 16, b"\x11" * 16, b"\x11" * 16)
    # the host refuses a card whose cryptogram does not verify, so drive a bad EXTERNAL
    # AUTHENTICATE with a host that has the right ENC key for the card cryptogram but a wrong
    # MAC key: the card then sees a bad MAC on EXTERNAL AUTHENTICATE.
    half = StaticKeys(gp_test_keys("02").enc, b"\x11" * 16, b"\x11" * 16)
    for _ in range(3):
        assert host.authenticate(0x01, keys=half) == 0x6300
    assert card.state.isd.auth_failures == 3
    reloaded = VirtualCard.load(card.path)
    host2 = Host(reloaded)
    host2.ok("00A4040008A000000151000000")
    _, sw = host2.send("8050000008" + "00" * 8 + "00")
    assert sw == 0x6983
    del wrong


def test_success_resets_failure_count(tmp_path: Path) -> None:
    card = new_card(tmp_path, max_auth_failures=3)
    host = Host(card)
    half = StaticKeys(gp_test_keys("02").enc, b"\x11" * 16, b"\x11" * 16)
    assert host.authenticate(0x01, keys=half) == 0x6300
    assert host.authenticate(0x01) == 0x9000
    assert card.state.isd.auth_failures == 0


def test_commands_without_mac_refused_in_session(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    assert host.authenticate(0x01) == 0x9000
    _, sw = host.send("80CA00E000")
    assert sw == 0x6982
    # the session is closed after that
    assert host.secure("80CA00E000")[1] == 0x6982


def test_install_requires_authentication(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.ok("00A4040008A000000151000000")
    _, sw = host.send("80E60C0000")
    assert sw == 0x6982


def test_install_and_select(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    _, sw = host.send(bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID)
    assert sw == 0x6A82
    host.authenticate()
    install_pboc(host)
    install_ssse(host)
    _, sw = host.send(bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID)
    assert sw == 0x9000
    _, sw = host.send(bytes((0, 0xA4, 4, 0, 15)) + SSSE_NAME)
    assert sw == 0x9000


@pytest.mark.parametrize("scp", ["02", "03"])
def test_personalized_app_locked_against_repersonalization(tmp_path: Path, scp: str) -> None:
    card = new_card(tmp_path, scp)
    host = Host(card, scp)
    host.authenticate(0x03)
    install_ssse(host)
    host.personalize(SSSE_NAME, ssse_dgis())
    app = card.state.app(SSSE_NAME)
    assert app is not None and app.lifecycle == "PERSONALIZED"
    assert card.state.ssse.keys["0A"] == bytes.fromhex("A1A2A3A4A5A6A7A8A9AAABACADAEAFA0")
    assert host.install_for_perso(SSSE_NAME) == 0x6985


def test_store_data_sequence_and_plain_keys_refused(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate()
    install_ssse(host)
    assert host.install_for_perso(SSSE_NAME) == 0x9000
    # a key DGI in clear is refused and nothing is stored
    _, sw = host.secure("80E2000013" + "8F0A10" + "00" * 16)
    assert sw == 0x6A80
    assert "0A" not in card.state.ssse.keys
    # wrong sequence number
    _, sw = host.secure("80E2000105" + "9F0C020303")
    assert sw == 0x6A86
    _, sw = host.secure("80E2000005" + "9F0C020303")
    assert sw == 0x9000
    # a DGI split over two commands
    rec = "0501" + "03" + "020133"
    assert host.secure("80E2000103" + rec[:6])[1] == 0x9000
    assert host.secure("80E2800203" + rec[6:])[1] == 0x9000
    assert card.state.ssse.records["0501"] == bytes.fromhex("020133")


def test_set_status_card_lifecycle_table(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate()
    assert host.secure("80F0800F00")[1] == 0x9000
    assert card.state.lifecycle == "SECURED"
    assert host.secure("80F0800100")[1] == 0x6985  # back to OP_READY: not in the table
    assert host.secure("80F0807F00")[1] == 0x9000
    assert card.state.lifecycle == "CARD_LOCKED"
    assert VirtualCard.load(card.path).state.lifecycle == "CARD_LOCKED"


def test_set_status_application_lock(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate()
    install_pboc(host)
    aid = PBOC_AID.hex()
    assert host.secure(f"80F04083{len(PBOC_AID):02X}{aid}")[1] == 0x9000
    _, sw = host.send(bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID)
    assert sw == 0x6A82
    host.authenticate()
    assert host.secure(f"80F04007{len(PBOC_AID):02X}{aid}")[1] == 0x9000
    _, sw = host.send(bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID)
    assert sw == 0x9000


@pytest.mark.parametrize("scp", ["02", "03"])
def test_put_key_replaces_test_keys(tmp_path: Path, scp: str) -> None:
    card = new_card(tmp_path, scp)
    host = Host(card, scp)
    host.authenticate(0x03)
    alg = "3DES" if scp == "02" else "AES"
    new = [cp.random_bytes(16) for _ in range(3)]
    assert host.channel is not None
    body = b"\x01"
    for key in new:
        enc = host.channel.encrypt_dgi_data(key)
        block = (b"\x80\x10" + enc) if scp == "02" else (b"\x88\x11\x10" + enc)
        body += block + b"\x03" + cp.kcv(alg, key)
    data, sw = host.secure(bytes((0x80, 0xD8, 0xFF, 0x81, len(body))) + body)
    assert sw == 0x9000
    assert data == b"\x01" + b"".join(cp.kcv(alg, k) for k in new)
    # the test keys are gone; the new keys work after a reload
    card2 = VirtualCard.load(card.path)
    host2 = Host(card2, scp)
    assert host2.authenticate(0x01, keys=StaticKeys(new[0], new[1], new[2], alg), kvn=1) == 0x9000


def test_put_key_bad_kcv_refused(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate(0x03)
    assert host.channel is not None
    body = b"\x01"
    for _ in range(3):
        key = cp.random_bytes(16)
        body += b"\x80\x10" + host.channel.encrypt_dgi_data(key) + b"\x03\x00\x00\x00"
    _, sw = host.secure(bytes((0x80, 0xD8, 0xFF, 0x81, len(body))) + body)
    assert sw == 0x6A80
    assert card.state.isd.keys[0].kvn == 0xFF


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("00", 0x6700),
        ("00A404", 0x6700),
        ("00A4040008A0000001", 0x6700),  # Lc says 8, 4 bytes follow
        ("00A404000000", 0x6700),  # extended length with one byte
        ("FFA4040000", 0x6E00),
        ("0060000000", 0x6D00),
        ("0012000000", 0x6D00),
        ("01A4040000", 0x6881),  # logical channel 1
        ("00A40488", 0x6A86),
        ("00A4040005A000000999", 0x6A82),
        ("80CA9F7000", 0x6A88),
        ("80E60C0000", 0x6982),
        ("84CA9F7F00", 0x6982),
        ("80F2800002", 0x6982),
        ("8050000000", 0x6700),
        ("805000000800000000000000000000", 0x6700),
        ("80502000080000000000000000", 0x6A88),  # no key set 20
        ("0082000010" + "00" * 16, 0x6D00),  # EXTERNAL AUTHENTICATE without a session
    ],
)
def test_malformed_and_refused_commands(tmp_path: Path, apdu: str, sw: int) -> None:
    host = Host(new_card(tmp_path))
    host.ok("00A4040008A000000151000000")
    assert host.send(apdu)[1] == sw


def test_install_then_make_selectable(tmp_path: Path) -> None:
    card = new_card(tmp_path)
    host = Host(card)
    host.authenticate()
    data = bytes.fromhex("07A000000333010108A00000033301010108A0000003330101010100")
    data += bytes.fromhex("02C90000")
    assert host.secure(bytes((0x80, 0xE6, 0x04, 0x00, len(data))) + data)[1] == 0x9000
    assert card.state.app(PBOC_AID).lifecycle == "INSTALLED"  # type: ignore[union-attr]
    sel = bytes.fromhex("000008A000000333010101000000")
    assert host.secure(bytes((0x80, 0xE6, 0x08, 0x00, len(sel))) + sel)[1] == 0x9000
    assert card.state.app(PBOC_AID).lifecycle == "SELECTABLE"  # type: ignore[union-attr]
    status, sw = host.secure("80F24002024F0000")
    assert sw == 0x9000 and PBOC_AID in status
