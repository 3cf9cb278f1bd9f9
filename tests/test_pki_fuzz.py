"""Hypothesis fuzzing of the PKI application (issue 17): random commands to a personalized GP
card's applet and to a native chip's PKI ADF (both in strict mode: any exception other than a
status word fails the test) always answer a status word, never change a certificate or a key,
and the card still signs after its PIN."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.card.native import NativeCard
from cardperso.card.vcard import VirtualCard
from test_pki_card import made, select, verify

INS = [0xA4, 0xB0, 0xD6, 0x84, 0xC4, 0x20, 0x5E, 0x2A, 0x2C, 0x40, 0x4E, 0xC2, 0xE0, 0x82, 0x50]
CLAS = [0x00, 0x04, 0x80, 0x84, 0x0C, 0x10, 0x14]  # 10, 14: chained (ISO 7816-4 b5)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    from pki_fixtures import make_lab

    tmp = tmp_path_factory.mktemp("pkifuzz")
    (tmp / "lab").mkdir()
    lab = make_lab(tmp / "lab", records=1)
    out = {}
    for kind in ("gp", "native"):
        (tmp / kind).mkdir()
        card, _, _, pin = made(lab, kind, tmp / kind)
        out[kind] = (card.path, pin)
    yield out


command = st.builds(
    lambda cla, ins, p1, p2, data: bytes((cla, ins, p1, p2))
    + (bytes((len(data),)) + data if data else b""),
    st.sampled_from(CLAS), st.sampled_from(INS), st.integers(0, 255), st.integers(0, 255),
    st.binary(max_size=80),
)  # fmt: skip


@pytest.mark.parametrize("kind", ["gp", "native"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands=st.lists(command, min_size=1, max_size=12))
def test_random_commands_never_break_the_pki_application(
    images: dict[str, tuple[Path, str]], kind: str, commands: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:  # fmt: skip
    source, pin = images[kind]
    path = tmp_path_factory.mktemp("ex") / source.name
    shutil.copy(source, path)
    card = NativeCard.load(path) if kind == "native" else VirtualCard.load(path)
    card.strict = True
    before = dict(card.state.pki.files)
    select(card)
    for apdu in commands:
        answer = card.transmit(apdu)
        assert len(answer) >= 2
    assert card.state.pki.files == before, "no random command changes a key or a certificate"
    select(card)
    if card.state.pki.pins["81"].left:
        assert verify(card, pin) == "9000"
        got = card.transmit(bytes.fromhex("002A9E9A04CAFEBABE00"))
        assert got[-2:] == b"\x90\x00" and len(got) == 66
