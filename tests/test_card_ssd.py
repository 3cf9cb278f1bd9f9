"""Supplementary security domains on the virtual card (GP 2.3 §7.2, delegated management):
creation by the ISD, first keys through the ISD, extradition of an application, each domain
personalizing only its own applications, and each domain's keys refused on the other."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.card import VirtualCard
from cardperso.card.isd import SD_MODULE, SD_PACKAGE
from cardperso.card.ssse import SSSE_NAME
from cardperso.card.state import dumps
from cardperso.card.vcard import PBOC_MODULE, PBOC_PACKAGE
from cardperso.crypto import kcv
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CryptogramMismatch
from cardperso.protocol.scp02 import Scp02Host
from test_card_support import (
    PBOC_AID,
    Host,
    gp_test_keys,
    install_ssse,
    new_card,
    pboc_dgis,
    ssse_dgis,
)

SSD_AID = bytes.fromhex("A00000033353534401")
BANK_KEYS = StaticKeys(
    bytes(range(0x60, 0x70)), bytes(range(0x70, 0x80)), bytes(range(0x80, 0x90)), "3DES"
)


def install_cmd(p1: int, package: bytes, module: bytes, aid: bytes, priv: bytes) -> bytes:
    data = b"".join(bytes((len(x),)) + x for x in (package, module, aid, priv, b"\xc9\x00"))
    data += b"\x00"
    return bytes((0x80, 0xE6, p1, 0x00, len(data))) + data


def put_key(host: Host, keys: StaticKeys, kvn: int, p1: int = 0) -> int:
    assert host.channel is not None
    data = bytearray([kvn])
    for k in (keys.enc, keys.mac, keys.dek):
        data += b"\x80\x10" + host.channel.encrypt_dgi_data(k) + b"\x03" + kcv("3DES", k)
    return host.secure(bytes((0x80, 0xD8, p1, 0x81, len(data))) + bytes(data))[1]


def extradite(host: Host, domain: bytes, aid: bytes) -> int:
    data = bytes((len(domain),)) + domain + b"\x00" + bytes((len(aid),)) + aid + b"\x00\x00\x00"
    return host.secure(bytes((0x80, 0xE6, 0x10, 0x00, len(data))) + data)[1]


def open_domain(host: Host, aid: bytes, keys: StaticKeys, kvn: int = 0) -> int:
    """SELECT ``aid``, INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (C-MAC + C-DEC)."""
    host.ok(bytes((0, 0xA4, 4, 0, len(aid))) + aid)
    scp = Scp02Host(keys, 0x03, kvn=kvn)
    resp = host.transport.transmit(scp.initialize_update())
    assert resp[-2:] == b"\x90\x00", resp.hex()
    ext = scp.process_initialize_update_response(resp)
    resp = host.transport.transmit(ext)
    sw = int.from_bytes(resp[-2:], "big")
    if sw == 0x9000:
        scp.process_external_authenticate_response(resp)
        host.channel = scp
    return sw


def two_stage_card(tmp_path: Path, privileges: bytes = b"\xa0\x00\x00") -> Host:
    """Factory: SSSE personalized by the ISD, SSD with the bank's keys, PBOC extradited."""
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_ssse(host)
    host.personalize(SSSE_NAME, ssse_dgis())
    assert host.secure(install_cmd(0x0C, SD_PACKAGE, SD_MODULE, SSD_AID, privileges))[1] == 0x9000
    assert host.install_for_perso(SSD_AID) == 0x9000
    assert put_key(host, BANK_KEYS, 0x30) == 0x9000
    assert host.secure(install_cmd(0x04, PBOC_PACKAGE, PBOC_MODULE, PBOC_AID, b"\x00"))[1] == 0x9000
    assert extradite(host, SSD_AID, PBOC_AID) == 0x9000
    return host


def test_ssd_is_created_without_keys(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    assert host.secure(install_cmd(0x0C, SD_PACKAGE, SD_MODULE, SSD_AID, b"\xa0"))[1] == 0x9000
    state = host.card.state
    assert state.ssd(SSD_AID) is not None and state.ssd(SSD_AID).keys == []  # type: ignore[union-attr]
    host.ok(bytes((0, 0xA4, 4, 0, len(SSD_AID))) + SSD_AID)
    # no key set yet: INITIALIZE UPDATE names an unknown key version
    assert host.send("8050000008" + "00" * 8)[1] == 0x6A88


def test_bank_keys_open_the_ssd_and_not_the_isd(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path)
    app = host.card.state.app(SSD_AID)
    assert app is not None and app.lifecycle == "PERSONALIZED"
    assert open_domain(host, SSD_AID, BANK_KEYS, 0x30) == 0x9000
    # the bank's keys on the ISD: the card cryptogram does not verify (host stops there)
    with pytest.raises(CryptogramMismatch):
        open_domain(host, bytes.fromhex("A000000151000000"), BANK_KEYS)
    # the factory's keys on the SSD: refused the same way, and never counted on the ISD
    with pytest.raises(CryptogramMismatch):
        open_domain(host, SSD_AID, gp_test_keys("02"))
    assert host.card.state.isd.auth_failures == 0


def test_failed_authentication_counts_on_the_ssd_only(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path)
    host.ok(bytes((0, 0xA4, 4, 0, len(SSD_AID))) + SSD_AID)
    assert host.send("8050000008" + "00" * 8)[1] == 0x9000
    assert host.send("8482000010" + "00" * 16)[1] == 0x6300
    state = VirtualCard.load(host.card.path).state
    assert state.ssd(SSD_AID).auth_failures == 1  # type: ignore[union-attr]
    assert state.isd.auth_failures == 0


def test_factory_cannot_change_bank_keys_or_personalize_pboc(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path)
    before = [list(map(bytes, (k.enc, k.mac, k.dek))) for k in host.card.state.ssd(SSD_AID).keys]  # type: ignore[union-attr]
    host.authenticate(0x03)
    assert host.install_for_perso(SSD_AID) == 0x6985  # already PERSONALIZED
    assert host.install_for_perso(PBOC_AID) == 0x6985  # the bank's application
    # a PUT KEY now changes the ISD's own keys, never the SSD's
    assert put_key(host, BANK_KEYS, 0x31) == 0x9000
    after = [list(map(bytes, (k.enc, k.mac, k.dek))) for k in host.card.state.ssd(SSD_AID).keys]  # type: ignore[union-attr]
    assert before == after
    assert host.card.state.isd.keyset(0x31) is not None


def test_bank_personalizes_pboc_but_not_ssse_nor_the_card(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path)
    ssse_before = host.card.state.ssse.records.copy()
    assert open_domain(host, SSD_AID, BANK_KEYS, 0x30) == 0x9000
    assert host.install_for_perso(SSSE_NAME) == 0x6985
    assert host.secure("80F0800F")[1] == 0x6985  # card life-cycle: ISD only
    assert (
        host.secure(
            install_cmd(0x0C, SD_PACKAGE, SD_MODULE, bytes.fromhex("A0000003335353440202"), b"\x80")
        )[1]
        == 0x6985
    )
    assert host.secure(install_cmd(0x08, b"", b"", PBOC_AID, b""))[1] == 0x9000
    host.personalize(PBOC_AID, pboc_dgis(balance=5))
    state = VirtualCard.load(host.card.path).state
    assert state.app(PBOC_AID).lifecycle == "PERSONALIZED"  # type: ignore[union-attr]
    assert state.pboc.ec_balance == 5
    assert state.ssse.records == ssse_before


def test_make_selectable_needs_delegated_management(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path, privileges=b"\x80\x00\x00")  # security domain, no DM
    assert open_domain(host, SSD_AID, BANK_KEYS, 0x30) == 0x9000
    assert host.secure(install_cmd(0x08, b"", b"", PBOC_AID, b""))[1] == 0x6985
    assert host.install_for_perso(PBOC_AID) == 0x9000  # personalization needs no privilege


def test_ssd_put_key_replaces_its_transport_keys(tmp_path: Path) -> None:
    host = two_stage_card(tmp_path)
    assert open_domain(host, SSD_AID, BANK_KEYS, 0x30) == 0x9000
    per_card = StaticKeys(
        bytes(range(0x10, 0x20)), bytes(range(0x20, 0x30)), bytes(range(0x30, 0x40)), "3DES"
    )
    assert put_key(host, per_card, 0x31, p1=0x30) == 0x9000
    with pytest.raises(CryptogramMismatch):
        open_domain(host, SSD_AID, BANK_KEYS, 0)
    assert open_domain(host, SSD_AID, per_card, 0x31) == 0x9000
    # GET STATUS from the SSD lists its own applications only
    data, sw = host.secure("80F24002024F0000")
    assert sw == 0x9000 and PBOC_AID in data and SSSE_NAME not in data


def test_privileges_must_match_the_package(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    assert host.secure(install_cmd(0x0C, SD_PACKAGE, SD_MODULE, SSD_AID, b"\x00"))[1] == 0x6985
    assert host.secure(install_cmd(0x0C, PBOC_PACKAGE, PBOC_MODULE, PBOC_AID, b"\x80"))[1] == 0x6A80
    assert host.card.state.ssds == {}


def test_extradition_rules(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    assert host.secure(install_cmd(0x04, PBOC_PACKAGE, PBOC_MODULE, PBOC_AID, b"\x00"))[1] == 0x9000
    assert extradite(host, SSD_AID, PBOC_AID) == 0x6A82  # no such domain
    assert host.secure(install_cmd(0x0C, SD_PACKAGE, SD_MODULE, SSD_AID, b"\xa0"))[1] == 0x9000
    assert extradite(host, SSD_AID, PBOC_AID) == 0x9000
    assert extradite(host, SSD_AID, PBOC_AID) == 0x6985  # no longer the ISD's
    assert host.card.state.app(PBOC_AID).domain == SSD_AID  # type: ignore[union-attr]


# -- fuzzing the domains of a two-stage card ------------------------------------------------------

SELECT_SSD = bytes((0, 0xA4, 4, 0, len(SSD_AID))) + SSD_AID


@pytest.fixture(scope="module")
def ssd_image() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="vcard-ssd-"))
    two_stage_card(root)
    yield root / "card.json"
    shutil.rmtree(root)


def _fresh(image: Path) -> VirtualCard:
    work = Path(tempfile.mkdtemp(prefix="vcard-ssd-ex-"))
    shutil.copy(image, work / "card.json")
    card = VirtualCard.load(work / "card.json")
    card.strict = True
    card.power_on()
    return card


_header = st.tuples(
    st.sampled_from([0x00, 0x80, 0x84, 0x04]),
    st.sampled_from([0xE6, 0xE2, 0xD8, 0xF0, 0xF2, 0xCA, 0x50, 0x82, 0xA4]),
    st.integers(0, 255),
    st.integers(0, 255),
).map(bytes)
_apdu = st.one_of(
    st.just(SELECT_SSD),
    st.tuples(_header, st.binary(max_size=40)).map(
        lambda hb: hb[0] + (bytes((len(hb[1]),)) + hb[1] if hb[1] else b"")
    ),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(_apdu, min_size=1, max_size=20))
def test_random_commands_to_the_ssd(ssd_image: Path, sequence: list[bytes]) -> None:
    card = _fresh(ssd_image)
    card.transmit(SELECT_SSD)
    for apdu in sequence:
        response = card.transmit(apdu)
        assert len(response) >= 2 and response[-2] in (
            0x90,
            0x61,
            0x62,
            0x63,
            0x67,
            0x68,
            0x69,
            0x6A,
            0x6B,
            0x6D,
            0x6E,
        )
    assert dumps(VirtualCard.load(card.path).state) == dumps(card.state)
    # without the bank's keys nothing reaches the SSD's keys or the PBOC application
    assert card.state.app(PBOC_AID).lifecycle == "INSTALLED"  # type: ignore[union-attr]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=120), p1=st.integers(0, 255), p2=st.integers(0, 255))
def test_random_bodies_in_an_ssd_session(ssd_image: Path, data: bytes, p1: int, p2: int) -> None:
    host = Host(_fresh(ssd_image))
    assert open_domain(host, SSD_AID, BANK_KEYS, 0x30) == 0x9000
    for ins in (0xE6, 0xE2, 0xD8, 0xF0):
        if host.channel is None or not host.channel.is_open:
            break
        apdu = bytes((0x80, ins, p1, p2, len(data))) + data if data else bytes((0x80, ins, p1, p2))
        _, sw = host.secure(apdu)
        assert sw >> 8 in (0x90, 0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)
    assert host.card.state.ssse.records  # the SSSE application is never touched
