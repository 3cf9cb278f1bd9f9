"""SCP02: pySim's public exchange on both sides, and host/card agreement properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openssl_cli as ossl
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import (
    CardError,
    CryptogramMismatch,
    DecodeError,
    IllegalTransition,
    MacMismatch,
    UsageError,
)
from cardperso.protocol.channel import CardSecureChannel, SecureChannel
from cardperso.protocol.scp02 import Scp02Card, Scp02Host, Scp02Messaging
from cardperso.protocol.session import State

H = bytes.fromhex
OK = H("9000")

# pySim tests/unittests/test_globalplatform.py (osmocom/pysim), SCP02_Auth_Test / SCP02_Test:
# keys KIC/KID/KIK, host challenge, INITIALIZE UPDATE response, EXTERNAL AUTHENTICATE and a
# C-MACed GET STATUS. The card used i=15/55 (C-MAC on the modified APDU, ICV encryption).
PYSIM_KEYS = gp.StaticKeys(
    H("100102030405060708090a0b0c0d0e0f"),
    H("101102030405060708090a0b0c0d0e0f"),
    H("102102030405060708090a0b0c0d0e0f"),
)
PYSIM_HC = H("40A62C37FA6304F8")
PYSIM_IU = H("805020000840A62C37FA6304F8")  # pySim sends no Le; ours appends Le = 00
PYSIM_IU_RESP = H("00000000000000000000700200016B4524ABEE7CF32EA3838BC148F3")
PYSIM_EXT_AUTH = H("8482010010BA6961667737C5BCEBECE14C7D6A4376")
PYSIM_PLAIN = H("80f28002024f00")
PYSIM_WRAPPED = H("84F280020A4F00B21AAFA3EB2D1672")

GP_KEY = H("404142434445464748494A4B4C4D4E4F")
GP_KEYS = gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY)


@pytest.mark.parametrize("i", [0x15, 0x55])
def test_pysim_exchange_host_side(i: int) -> None:
    host = Scp02Host(PYSIM_KEYS, 0x01, i=i, kvn=0x20)
    assert host.initialize_update(PYSIM_HC) == PYSIM_IU + b"\x00"
    assert host.process_initialize_update_response(PYSIM_IU_RESP + OK) == PYSIM_EXT_AUTH
    host.process_external_authenticate_response(OK)
    assert host.is_open and host.session is not None
    assert host.session.sequence_counter == H("0001")
    assert host.session.kvn == 0x70 and host.session.kdd == bytes(10)
    assert host.wrap(PYSIM_PLAIN) == PYSIM_WRAPPED


# pySim SCP02_Test.test_mac_command: four APDU cases C-MACed one after the other in one session
# (the ICV chains from each C-MAC, encrypted under the left half of S-MAC).
PYSIM_MAC_CASES = [
    ("80F22002", "84F220020814DB34FA4341DCA8"),
    ("80ca006600", "84CA00660855ED7C5FF069512B00"),
    ("80F220020a4f0212345c054f9f70c5", "84F22002124F0212345C054F9F70C58FC1B380C4228AF8"),
    ("80f28002024f0000", "84F280020A4F003B95F09317DE6A4E00"),
]


def test_pysim_mac_cases_in_sequence() -> None:
    host = Scp02Host(PYSIM_KEYS, 0x01, i=0x55, kvn=0x20)
    host.initialize_update(PYSIM_HC)
    host.process_initialize_update_response(PYSIM_IU_RESP + OK)
    host.process_external_authenticate_response(OK)
    card = Scp02Card(
        PYSIM_KEYS, kvn=0x70, seq_counter=1, i=0x55, challenge=lambda n: H("6B4524ABEE7C")
    )
    card.initialize_update(H("8050000008") + PYSIM_HC + b"\x00")
    assert card.external_authenticate(PYSIM_EXT_AUTH) == OK
    for plain, wrapped in PYSIM_MAC_CASES:
        assert host.wrap(H(plain)) == H(wrapped)
        assert card.unwrap_command(H(wrapped)) == H(plain)


def test_pysim_exchange_card_side() -> None:
    card = Scp02Card(
        PYSIM_KEYS, kvn=0x70, seq_counter=1, i=0x55, challenge=lambda n: H("6B4524ABEE7C")
    )
    # The pySim card answered KVN 70 to a request for KVN 20; ask ours for "any" (P1 = 00).
    assert card.initialize_update(H("8050000008") + PYSIM_HC + b"\x00") == PYSIM_IU_RESP + OK
    assert card.external_authenticate(PYSIM_EXT_AUTH) == OK
    assert card.is_open and card.seq_counter == 2
    assert card.unwrap_command(PYSIM_WRAPPED) == PYSIM_PLAIN


def test_pysim_wrong_card_cryptogram_closes_for_good() -> None:
    # pySim test_mutual_auth_fail_card_cryptogram: last byte of the response changed.
    host = Scp02Host(PYSIM_KEYS, 0x01, kvn=0x20)
    host.initialize_update(PYSIM_HC)
    with pytest.raises(CryptogramMismatch):
        host.process_initialize_update_response(PYSIM_IU_RESP[:-1] + b"\xff")
    assert host.state is State.CLOSED
    with pytest.raises(
        IllegalTransition, match="'initialize_update' is not allowed in state 'closed'"
    ):
        host.initialize_update()  # never retry on the same object
    with pytest.raises(
        IllegalTransition, match="SCP02 host: 'wrap' is not allowed in state 'closed'"
    ):
        host.wrap(PYSIM_PLAIN)


def test_session_keys_for_the_gp_test_key() -> None:
    # GlobalPlatformPro TestPlaintextKeys.testSessionKeys_SCP02 (session key KCVs F2DCDD,
    # 5FCC69, 85272E for seq 0000): a card at seq 0000 and the host agree with those keys.
    sk = gp.scp02_session_keys(GP_KEYS, H("0000"))
    assert cp.kcv("3DES", sk.dek) == H("85272E")
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=0)
    host = Scp02Host(GP_KEYS, 0x03)
    _open(host, card)
    assert host.session is not None and host.session.sequence_counter == H("0000")
    # DEK-encrypted data (TDES-ECB under the session DEK): GlobalPlatformPro
    # TestPlaintextKeys.testKeyEncryption_SCP02 encrypts the key 404142..4F under the session
    # DEK of keys 404142..4F at sequence counter 0000.
    assert host.encrypt_dgi_data(GP_KEY) == H("EFBEE6C6D99D7B70BDE9D7E927F020AF")
    assert card.decrypt_dgi_data(H("EFBEE6C6D99D7B70BDE9D7E927F020AF")) == GP_KEY


def _open(host: Scp02Host, card: Scp02Card) -> None:
    resp = card.initialize_update(host.initialize_update())
    ext = host.process_initialize_update_response(resp)
    answer = card.external_authenticate(ext)
    host.process_external_authenticate_response(answer)
    assert host.is_open and card.is_open


# omfgp tests/omfgp/scp02_test.py test_derive_key: S-ENC of keys 404142..4F at sequence counter
# 0007. C-DEC (GP 2.3 E.4.7): the data field 80-padded, TDES-CBC under S-ENC with a zero IV.
OMFGP_S_ENC_0007 = H("A2268F71917EFE0F33CC6166E1154E27")


@pytest.mark.parametrize("data", ["4F00", "4F0212345C054F9F70C5", "00" * 8, "A5" * 23])
def test_c_dec_openssl(data: str) -> None:
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=7)
    host = Scp02Host(GP_KEYS, 0x03)
    _open(host, card)
    plain = CommandAPDU(0x80, 0xF2, 0x80, 0x02, H(data), 256)
    wrapped = host.wrap(plain.to_bytes())
    body = CommandAPDU.parse(wrapped).data[:-8]
    padded = H(data) + b"\x80" + bytes(-(len(data) // 2 + 1) % 8)
    # Outside implementation: OpenSSL's des-ede-cbc under the published S-ENC.
    assert body == ossl.enc("des-ede-cbc", OMFGP_S_ENC_0007, padded, bytes(8))
    assert card.unwrap_command(wrapped) == plain.to_bytes()


def test_protocol_classes() -> None:
    assert isinstance(Scp02Host(GP_KEYS), SecureChannel)
    assert isinstance(Scp02Card(GP_KEYS, 0xFF, 0), CardSecureChannel)


def test_wrong_host_keys_give_6300_and_card_drops_session() -> None:
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=5)
    other = gp.StaticKeys(GP_KEY, GP_KEY, GP_KEY)
    host = Scp02Host(other, 0x01)
    resp = card.initialize_update(host.initialize_update())
    ext = bytearray(host.process_initialize_update_response(resp))
    ext[6] ^= 0x01  # corrupt the host cryptogram, keep the MAC -> MAC fails first
    assert card.external_authenticate(bytes(ext)) == H("6982")
    assert card.state is State.IDLE and card.seq_counter == 5
    with pytest.raises(CardError, match="card returned 6982") as info:
        host.process_external_authenticate_response(H("6982"))
    assert info.value.sw == 0x6982
    assert host.state is State.CLOSED


def test_card_answers_6300_for_a_bad_host_cryptogram() -> None:
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=5)
    host = Scp02Host(GP_KEYS, 0x01)
    resp = card.initialize_update(host.initialize_update())
    host.process_initialize_update_response(resp)
    # A well-MACed EXTERNAL AUTHENTICATE with a wrong cryptogram: build it with the card's
    # own messaging code so only the cryptogram is wrong.
    sk = gp.scp02_session_keys(GP_KEYS, H("0005"))
    bad = Scp02Messaging(sk, 0x55, 0x01).wrap(CommandAPDU(0x80, 0x82, 0x01, 0x00, bytes(8)))
    assert card.external_authenticate(bad) == H("6300")
    assert not card.is_open


def test_card_refuses_unknown_kvn_and_misuse() -> None:
    card = Scp02Card(GP_KEYS, kvn=0x20, seq_counter=0)
    assert card.initialize_update(H("8050300008") + bytes(8) + b"\x00") == H("6A88")
    assert card.external_authenticate(PYSIM_EXT_AUTH) == H("6985")
    with pytest.raises(
        IllegalTransition, match="SCP02 card: 'unwrap_command' is not allowed in state 'idle'"
    ):
        card.unwrap_command(PYSIM_WRAPPED)
    with pytest.raises(UsageError):
        Scp02Host(GP_KEYS, 0x13)  # R-MAC levels are not implemented for SCP02
    with pytest.raises(UsageError):
        Scp02Host(GP_KEYS, 0x01, i=0x0A)


_APDUS = st.builds(
    CommandAPDU,
    cla=st.sampled_from([0x80, 0x00, 0x81]),
    ins=st.sampled_from([0xE2, 0xE6, 0xF0, 0xCA, 0xD8]),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=200),
    le=st.one_of(st.none(), st.integers(1, 256)),
)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([0x00, 0x01, 0x03]),
    st.sampled_from([0x15, 0x55, 0x05, 0x01, 0x11]),
    st.lists(_APDUS, min_size=1, max_size=5),
    st.integers(0, 0xFFFF),
    st.data(),
)
def test_host_and_card_agree(
    level: int, i: int, apdus: list[CommandAPDU], seq: int, data: st.DataObject
) -> None:
    card = Scp02Card(GP_KEYS, kvn=0xFF, seq_counter=seq, i=i)
    host = Scp02Host(GP_KEYS, level, i=i)
    _open(host, card)
    for cmd in apdus:
        plain = cmd.to_bytes()
        wrapped = host.wrap(plain)
        assert card.unwrap_command(wrapped) == plain
        assert host.unwrap(card.wrap_response(b"\x01\x02", 0x9000)) == H("01029000")
    if level:
        # Tampering any byte but Le (which is not MACed) is caught: a changed Lc no longer
        # parses, anything else fails the C-MAC and ends the card's session.
        bad = bytearray(host.wrap(apdus[0].to_bytes()))
        pos = data.draw(st.integers(0, len(bad) - 1 - (apdus[0].le is not None)))
        bad[pos] ^= data.draw(st.integers(1, 255))
        with pytest.raises((MacMismatch, DecodeError)) as info:
            card.unwrap_command(bytes(bad))
        if info.type is MacMismatch:
            assert not card.is_open
