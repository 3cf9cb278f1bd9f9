"""Hypothesis fuzzing of the virtual card's APDU dispatcher: random APDUs and random sequences
never raise (the card runs in strict mode, so any unexpected exception fails the test), always
answer a status word, and leave an image that reloads to the very state in memory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.card import VirtualCard
from cardperso.card.ssse import SSSE_NAME
from cardperso.card.state import dumps
from cardperso.card.vcard import ISD_AID
from test_card_support import Host, install_pboc, install_ssse, new_card, pboc_dgis, ssse_dgis

PBOC_AID = bytes.fromhex("A000000333010101")
SELECTS = [
    bytes((0, 0xA4, 4, 0, len(aid))) + aid
    for aid in (ISD_AID, SSSE_NAME, PBOC_AID, b"1PAY.SYS.DDF01", b"2PAY.SYS.DDF01")
]
CLAS = [0x00, 0x04, 0x0C, 0x80, 0x84, 0x01, 0x40, 0xFF, 0xA0]
INS = [0xA4, 0xB2, 0xDC, 0xCA, 0x84, 0x82, 0x88, 0x20, 0x5E, 0xA8, 0xAE, 0xDA, 0x50, 0xE6]
INS += [0xE2, 0xF0, 0xD8, 0xF2, 0xC0, 0x70, 0x00, 0x61, 0x90]


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, Path]]:
    """A blank and a personalized card image, copied for every example."""
    root = Path(tempfile.mkdtemp(prefix="vcard-fuzz-"))
    blank_dir, perso_dir = root / "blank", root / "perso"
    blank_dir.mkdir()
    perso_dir.mkdir()
    new_card(blank_dir)
    host = Host(new_card(perso_dir))
    host.authenticate(0x03)
    install_ssse(host)
    install_pboc(host)
    host.personalize(SSSE_NAME, ssse_dgis())
    host.authenticate(0x03)
    host.personalize(PBOC_AID, pboc_dgis(balance=5000))
    yield {"blank": blank_dir / "card.json", "perso": perso_dir / "card.json"}
    shutil.rmtree(root)


def fresh(image: Path) -> VirtualCard:
    work = Path(tempfile.mkdtemp(prefix="vcard-ex-"))
    shutil.copy(image, work / "card.json")
    card = VirtualCard.load(work / "card.json")
    card.strict = True
    card.power_on()
    return card


def structured_apdu() -> st.SearchStrategy[bytes]:
    header = st.tuples(
        st.sampled_from(CLAS), st.sampled_from(INS), st.integers(0, 255), st.integers(0, 255)
    ).map(bytes)
    body = st.one_of(
        st.just(b""),
        st.integers(0, 255).map(lambda le: bytes((le,))),
        st.binary(min_size=1, max_size=40).map(lambda d: bytes((len(d),)) + d),
        st.binary(min_size=1, max_size=40).map(lambda d: bytes((len(d),)) + d + b"\x00"),
        st.binary(max_size=12),
    )
    return st.tuples(header, body).map(lambda hb: hb[0] + hb[1])


apdus = st.one_of(st.binary(max_size=300), structured_apdu(), st.sampled_from(SELECTS))


def check(card: VirtualCard, response: bytes) -> None:
    assert len(response) >= 2
    assert response[-2] in (0x90, 0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)
    if response[-2] not in (0x90, 0x61, 0x62, 0x63):
        assert len(response) == 2, "an error status word comes without data (ISO 7816-4)"


@pytest.mark.parametrize("which", ["blank", "perso"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(apdu=apdus)
def test_random_apdu_answers_a_status_word(
    images: dict[str, Path], which: str, apdu: bytes
) -> None:
    card = fresh(images[which])
    check(card, card.transmit(apdu))


@pytest.mark.parametrize("which", ["blank", "perso"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(apdus, min_size=1, max_size=25))
def test_random_sequences_keep_a_consistent_image(
    images: dict[str, Path], which: str, sequence: list[bytes]
) -> None:
    card = fresh(images[which])
    for apdu in sequence:
        check(card, card.transmit(apdu))
    assert dumps(VirtualCard.load(card.path).state) == dumps(card.state)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200), p1=st.integers(0, 255), p2=st.integers(0, 255))
def test_random_store_data_in_a_session(
    images: dict[str, Path], data: bytes, p1: int, p2: int
) -> None:
    """Random STORE DATA / INSTALL / PUT KEY bodies under a real secure channel."""
    card = fresh(images["blank"])
    host = Host(card)
    assert host.authenticate(0x01) == 0x9000
    install_ssse(host)
    assert host.install_for_perso(SSSE_NAME) == 0x9000
    for ins in (0xE2, 0xD8, 0xE6, 0xF0):
        body = data[:200]
        apdu = bytes((0x80, ins, p1, p2, len(body))) + body if body else bytes((0x80, ins, p1, p2))
        if host.channel is None or not host.channel.is_open:
            break
        _, sw = host.secure(apdu)
        assert sw >> 8 in (0x90, 0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)


def _cmd(cla: int, ins: int, p1: int, p2: int, data: bytes, le: bool = True) -> bytes:
    return bytes((cla, ins, p1, p2, len(data))) + data + (b"\x00" if le else b"")


_b = st.binary
_i = st.integers(0, 255)
#: Commands that are valid or nearly so, to reach the deeper states of a transaction.
near_valid = st.one_of(
    st.sampled_from(SELECTS),
    st.just(
        _cmd(0x80, 0xA8, 0, 0, bytes.fromhex("8309") + b"\x01" + bytes(5) + b"\x01\x00\x01\x56")
    ),
    st.just(_cmd(0x80, 0xA8, 0, 0, bytes.fromhex("830900") + bytes(8))),
    st.builds(
        lambda p1, d: _cmd(0x80, 0xAE, p1, 0, d),
        st.sampled_from([0, 0x40, 0x80, 0x90]),
        _b(min_size=29, max_size=31),
    ),
    st.builds(lambda d: _cmd(0x00, 0x82, 0, 0, d, False), _b(min_size=10, max_size=10)),
    st.builds(
        lambda t, d: _cmd(0x04, 0xDA, 0x9F, t, d, False),
        st.sampled_from([0x79, 0x77, 0x78, 0x6D, 0x36]),
        _b(min_size=9, max_size=11),
    ),
    st.builds(lambda d: _cmd(0x00, 0x20, 0, 0x80, d, False), _b(min_size=8, max_size=8)),
    st.builds(lambda r, p2: bytes((0, 0xB2, r, p2, 0)), _i, _i),
    st.builds(
        lambda t: bytes((0x80, 0xCA, 0x9F, t, 0)),
        st.sampled_from([0x79, 0x36, 0x13, 0x17, 0x74, 0x51]),
    ),
    st.just(bytes.fromhex("0084000008")),
    st.builds(
        lambda k, d: _cmd(0, 0x82, 0, k, d, False),
        st.sampled_from([0x04, 0x0A, 0x0D, 0x01]),
        _b(min_size=16, max_size=16),
    ),
    st.builds(lambda d: _cmd(0, 0x88, 0, 0, d, False), _b(min_size=16, max_size=16)),
    st.builds(
        lambda r, p2, d: _cmd(0, 0xDC, r, p2, d, False),
        _i,
        st.sampled_from([0x2C, 0x34, 0x6C, 0x30]),
        _b(min_size=1, max_size=34),
    ),
    st.builds(lambda d: _cmd(0x80, 0x5E, 1, 0, d, False), _b(min_size=1, max_size=13)),
    st.builds(lambda d: _cmd(0, 0x20, 0, 0, d, False), _b(max_size=7)),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(st.one_of(near_valid, apdus), min_size=1, max_size=40))
def test_near_valid_transactions(images: dict[str, Path], sequence: list[bytes]) -> None:
    card = fresh(images["perso"])
    for apdu in sequence:
        check(card, card.transmit(apdu))
    state = card.state.pboc
    assert 0 <= state.ec_balance <= state.ec_balance_limit
    assert dumps(VirtualCard.load(card.path).state) == dumps(card.state)
