"""Hypothesis fuzzing of the new PBOC paths: a card with an ICC key in a contactless field gets
random sequences of nearly valid commands - GPO with random TTQ and PDOL data (qPBOC, the full
path, refusals), GENERATE AC with random P1 (CDA bit included) and CDOL data, INTERNAL
AUTHENTICATE, GET DATA, READ RECORD. The card runs strict (an unexpected exception fails the
test), always answers a status word, keeps its e-cash within its limits, and leaves an image
that reloads to the state in memory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.card import VirtualCard
from cardperso.card.state import dumps
from test_card_fuzz import check
from test_card_fuzz import fresh as fuzz_fresh
from test_card_support import PBOC_AID
from test_pboc_oda import card as keyed_card
from test_pboc_oda import genrsa
from test_qpboc import qpboc_dgis

SELECT_PBOC = bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID + b"\x00"
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


@pytest.fixture(scope="module")
def image() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="vcard-cl-fuzz-"))
    key = genrsa(root, 1024, 3)
    host = keyed_card(root, key, qpboc_dgis(5000, x9F58="03", x9F59="05", x9F52="C0C0"))
    yield host.card.path
    shutil.rmtree(root)


def fresh(image: Path) -> VirtualCard:
    card = fuzz_fresh(image)  # a copy, strict, powered
    card.contactless = True
    return card


def _cmd(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    return bytes((cla, ins, p1, p2, len(data))) + data + b"\x00"


_ttq = st.tuples(
    st.sampled_from([0x00, 0x20, 0x28, 0x40, 0x26, 0x2A, 0x60, 0xFF]),
    st.sampled_from([0x00, 0x40, 0x80, 0xC0]),
    st.just(0),
    st.sampled_from([0x00, 0x80]),
).map(bytes)
_amount = st.integers(0, 999_999).map(lambda n: bytes.fromhex(f"{n:012d}"))
_gpo = st.one_of(
    st.tuples(
        _ttq, st.sampled_from([b"\x00", b"\x01"]), _amount, st.binary(min_size=23, max_size=23)
    ).map(lambda t: b"".join(t)),
    st.binary(max_size=40),
).map(lambda pdol: _cmd(0x80, 0xA8, 0, 0, bytes((0x83, len(pdol))) + pdol))
_gac = st.tuples(
    st.sampled_from([0x00, 0x10, 0x40, 0x50, 0x80, 0x90, 0xC0]),
    st.one_of(
        st.tuples(_amount, st.binary(min_size=23, max_size=23)).map(lambda t: t[0] + t[1]),
        st.tuples(
            st.sampled_from([b"00", b"Y3", b"Z3"]), _amount, st.binary(min_size=23, max_size=23)
        ).map(lambda t: b"".join(t)),
        st.binary(max_size=40),
    ),
).map(lambda t: _cmd(0x80, 0xAE, t[0], 0, t[1]))
_other = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda d: _cmd(0x00, 0x88, 0, 0, d)),
    st.integers(0, 0xFFFF).map(lambda tag: bytes((0x80, 0xCA, tag >> 8, tag & 0xFF, 0))),
    st.tuples(st.integers(0, 12), st.integers(0, 31)).map(
        lambda t: bytes((0x00, 0xB2, t[0], t[1] << 3 | 4, 0))
    ),
    st.binary(min_size=10, max_size=10).map(lambda d: _cmd(0x00, 0x82, 0, 0, d)),
)
commands = st.one_of(st.sampled_from([SELECT_PBOC, SELECT_PPSE]), _gpo, _gac, _other)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=st.lists(commands, min_size=1, max_size=20))
def test_random_contactless_sequences(image: Path, sequence: list[bytes]) -> None:
    card = fresh(image)
    card.transmit(SELECT_PBOC)
    for apdu in sequence:
        check(card, card.transmit(apdu))
    d = card.state.pboc
    assert 0 <= d.ec_balance <= d.ec_balance_limit and d.offline_count <= 0xFF
    assert dumps(VirtualCard.load(card.path).state) == dumps(card.state)
