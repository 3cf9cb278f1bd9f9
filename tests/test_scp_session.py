"""The secure-channel session table, and card-cryptogram checks on both SCP versions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.crypto import gp
from cardperso.errors import CryptogramMismatch, IllegalTransition
from cardperso.protocol.scp02 import Scp02Card, Scp02Host
from cardperso.protocol.scp03 import Scp03Card, Scp03Host
from cardperso.protocol.session import TRANSITIONS, Event, Session, State

H = bytes.fromhex
KEY = H("404142434445464748494A4B4C4D4E4F")


def test_table_is_the_only_way() -> None:
    s = Session("test")
    assert s.state is State.IDLE
    s.fire(Event.INITIALIZE_UPDATE)
    with pytest.raises(IllegalTransition) as info:
        s.fire(Event.WRAP)
    assert (info.value.machine, info.value.state, info.value.event) == ("test", "init_sent", "wrap")
    assert s.fire(Event.FAIL) is State.CLOSED
    # nothing leaves CLOSED except CLOSE itself: a failed host session is never reused
    assert [e for (st_, e) in TRANSITIONS if st_ is State.CLOSED] == [Event.CLOSE]


def test_every_state_is_reachable() -> None:
    reached = {State.IDLE} | set(TRANSITIONS.values())
    assert reached == set(State)


def test_wrap_before_authentication_is_illegal() -> None:
    host = Scp02Host(gp.StaticKeys(KEY, KEY, KEY))
    with pytest.raises(
        IllegalTransition, match="SCP02 host: 'wrap' is not allowed in state 'idle'"
    ):
        host.wrap(H("80F28002024F00"))
    host.initialize_update()
    with pytest.raises(
        IllegalTransition, match="'encrypt_data' is not allowed in state 'init_sent'"
    ):
        host.encrypt_dgi_data(bytes(8))


@settings(max_examples=50, deadline=None)
@given(st.integers(12, 27), st.integers(1, 255))
def test_scp02_any_change_to_challenge_seq_or_cryptogram_is_refused(pos: int, flip: int) -> None:
    keys = gp.StaticKeys(KEY, KEY, KEY)
    card, host = Scp02Card(keys, 0xFF, 3), Scp02Host(keys)
    resp = bytearray(card.initialize_update(host.initialize_update()))
    resp[pos] ^= flip
    with pytest.raises(CryptogramMismatch):
        host.process_initialize_update_response(bytes(resp))
    assert host.state is State.CLOSED


@settings(max_examples=50, deadline=None)
@given(st.integers(13, 28), st.integers(1, 255), st.sampled_from([0x00, 0x70]))
def test_scp03_any_change_to_challenge_or_cryptogram_is_refused(
    pos: int, flip: int, i: int
) -> None:
    keys = gp.StaticKeys(KEY, KEY, KEY, "AES")
    card, host = Scp03Card(keys, 0x30, i=i), Scp03Host(keys)
    resp = bytearray(card.initialize_update(host.initialize_update()))
    resp[pos] ^= flip
    with pytest.raises(CryptogramMismatch):
        host.process_initialize_update_response(bytes(resp))
    assert host.state is State.CLOSED


def test_card_restarts_on_a_new_initialize_update() -> None:
    keys = gp.StaticKeys(KEY, KEY, KEY, "AES")
    card = Scp03Card(keys, 0x30, i=0x70)
    first = Scp03Host(keys)
    card.initialize_update(first.initialize_update())
    second = Scp03Host(keys)
    resp = card.initialize_update(second.initialize_update())
    ext = second.process_initialize_update_response(resp)
    assert card.external_authenticate(ext) == H("9000")
    assert card.seq_counter == 2
