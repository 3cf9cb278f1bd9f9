"""SCP03: pySim's public exchanges (AES-128/192/256, levels 03/11/33) on both sides, and
host/card agreement properties for every level and i parameter."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import gp
from cardperso.crypto import primitives as cp
from cardperso.errors import (
    CryptogramMismatch,
    DecodeError,
    IllegalTransition,
    MacMismatch,
    UsageError,
)
from cardperso.protocol.channel import CardSecureChannel, SecureChannel
from cardperso.protocol.scp03 import LEVELS, Scp03Card, Scp03Host
from cardperso.protocol.session import State

H = bytes.fromhex
OK = H("9000")

# pySim tests/unittests/test_globalplatform.py (osmocom/pysim): SCP03 key sets and exchanges
# (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, a wrapped GET DATA for the EID (80E29100...) and
# the card's wrapped answer). The card is an eUICC: its pseudo-random card challenge (i = 70)
# is derived with the ISD-R AID below as context, which these vectors confirm.
ISD_R = H("A0000005591010FFFFFFFF8900000100")
AES128 = gp.StaticKeys(
    H("000102030405060708090a0b0c0d0e0f"),
    H("101112131415161718191a1b1c1d1e1f"),
    H("202122232425262728292a2b2c2d2e2f"),
    "AES",
)
AES192 = gp.StaticKeys(
    H("000102030405060708090a0b0c0d0e0f0001020304050607"),
    H("101112131415161718191a1b1c1d1e1f1011121314151617"),
    H("202122232425262728292a2b2c2d2e2f2021222324252627"),
    "AES",
)
AES256 = gp.StaticKeys(
    H("000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"),
    H("101112131415161718191a1b1c1d1e1f101112131415161718191a1b1c1d1e1f"),
    H("202122232425262728292a2b2c2d2e2f202122232425262728292a2b2c2d2e2f"),
    "AES",
)
GET_EID = H("80E2910006BF3E035C015A")
EID_RESP = H("bf3e125a1089882119900000000000000000000005")


@dataclass(frozen=True)
class Vector:
    name: str
    keys: gp.StaticKeys
    iu: str
    iu_resp: str
    ext_auth: str
    cmd: str
    resp: str


VECTORS = [
    Vector(
        "AES128_11",
        AES128,
        "8050300008b13e5f938fc108c4",
        "000000000000000000003003703eb51047495b249f66c484c1d2ef1948000002",
        "84821100107d5f5826a993ebc89eea24957fa0b3ce",
        "84e291000ebf3e035c015a558d036518a28297",
        "bf3e125a1089882119900000000000000000000005971be68992dbbdfa",
    ),
    Vector(
        "AES128_03",
        AES128,
        "80503000088e1552d0513c60f3",
        "0000000000000000000030037030760cd2c47c1dd395065fe5ead8a9d7000001",
        "8482030010fd4721a14d9b07003c451d2f8ae6bb21",
        "84e2910018ca9c00f6713d79bc8baa642bdff51c3f6a4082d3bd9ad26c",
        "bf3e125a1089882119900000000000000000000005",
    ),
    Vector(
        "AES128_33",
        AES128,
        "8050300008fdf38259a1e0de44",
        "000000000000000000003003703b1aca81e821f219081cdc01c26b372d000003",
        "84823300108c36f96bcc00724a4e13ad591d7da3f0",
        "84e2910018267a85dfe4a98fca6fb0527e0dfecce4914e40401433c87f",
        "f3ba2b1013aa6224f5e1c138d71805c569e5439b47576260b75fc021b25097cb2e68f8a0144975b9",
    ),
    Vector(
        "AES192_11",
        AES192,
        "80503100087396430b768b085b",
        "000000000000000000003103708cfc23522ffdbf1e5df5542cac8fd866000003",
        "84821100102145ed30b146f5db252fb7e624cec244",
        "84e291000ebf3e035c015aff42cf801d143944",
        "bf3e125a1089882119900000000000000000000005162fbd33e04940a9",
    ),
    Vector(
        "AES192_33",
        AES192,
        "80503100089b3f2eef0e8c9374",
        "00000000000000000000310370f6bb305a15bae1a68f79fb08212fbed7000002",
        "84823300109100bc22d58b45b86a26365ce39ff3cf",
        "84e29100188f7f946c84f70d17994bc6e8791251bb1bb1bf02cf8de589",
        "c05176c1b6f72aae50c32cbee63b0e95998928fd4dfb2be9f27ffde8c8476f5909b4805cc4039599",
    ),
    Vector(
        "AES256_03",
        AES256,
        "8050320008c6066990fc426e1d",
        "000000000000000000003203708682cd81bbd8919f2de3f2664581f118000001",
        "848203001077c493b632edadaf865a1e64acc07ce9",
        "84e29100183ddaa60594963befaada3525b492ede23c2ab2c1ce3afe44",
        "bf3e125a1089882119900000000000000000000005",
    ),
    Vector(
        "AES256_33",
        AES256,
        "805032000897b2055fe58599fd",
        "00000000000000000000320370a8439a22cedf045fa9f1903b2834f26e000002",
        "8482330010508a0fd959d2e547c6b33154a6be2057",
        "84e29100187a5ef717eaf1e135ae92fe54429d0e465decda65f5fe5aea",
        "ea90dbfa648a67c5eb6abc57f8530b97d0cd5647c5e8732016b55203b078dd2ace7f8bc5d1c1cd99",
    ),
]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_pysim_exchange_host_side(v: Vector) -> None:
    iu, ext = H(v.iu), H(v.ext_auth)
    host = Scp03Host(v.keys, ext[2], kvn=iu[2])
    assert host.initialize_update(iu[5:]) == iu + b"\x00"  # pySim sends no Le
    assert host.process_initialize_update_response(H(v.iu_resp) + OK) == ext
    host.process_external_authenticate_response(OK)
    assert host.wrap(GET_EID) == H(v.cmd)
    assert host.unwrap(H(v.resp) + OK) == EID_RESP + OK


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_pysim_exchange_card_side(v: Vector) -> None:
    iu_resp = H(v.iu_resp)
    seq = int.from_bytes(iu_resp[29:32], "big")
    card = Scp03Card(v.keys, kvn=iu_resp[10], seq_counter=seq - 1, i=0x70, aid=ISD_R)
    assert card.initialize_update(H("8050000008") + H(v.iu)[5:] + b"\x00") == iu_resp + OK
    assert card.external_authenticate(H(v.ext_auth)) == OK
    assert card.unwrap_command(H(v.cmd)) == GET_EID
    assert card.wrap_response(EID_RESP, 0x9000) == H(v.resp) + OK


def test_wrong_card_cryptogram_closes_for_good() -> None:
    v = VECTORS[0]
    host = Scp03Host(v.keys, 0x11)
    host.initialize_update(H(v.iu)[5:])
    with pytest.raises(CryptogramMismatch):
        host.process_initialize_update_response(H(v.iu_resp[:-8] + "00000000"))
    assert host.state is State.CLOSED
    with pytest.raises(IllegalTransition):
        host.initialize_update()


def test_level_needs_the_card_to_support_it() -> None:
    card = Scp03Card(AES128, kvn=0x30, i=0x00)
    host = Scp03Host(AES128, 0x33)
    with pytest.raises(UsageError):
        host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    with pytest.raises(UsageError):
        Scp03Host(AES128, 0x31)


def test_r_mac_tamper_is_caught() -> None:
    v = VECTORS[0]
    host = Scp03Host(v.keys, 0x11)
    host.initialize_update(H(v.iu)[5:])
    assert host.process_initialize_update_response(H(v.iu_resp)) == H(v.ext_auth)
    host.process_external_authenticate_response(OK)
    host.wrap(GET_EID)
    bad = bytearray(H(v.resp) + OK)
    bad[3] ^= 0x01
    with pytest.raises(MacMismatch):
        host.unwrap(bytes(bad))
    assert host.state is State.CLOSED


def test_dek_encryption_is_aes_cbc_under_static_dek() -> None:
    card = Scp03Card(AES128, kvn=0x30)
    host = Scp03Host(AES128, 0x03)
    _open(host, card)
    blob = bytes(range(48))
    enc = host.encrypt_dgi_data(blob)
    assert enc == cp.cbc_encrypt("AES", AES128.dek, blob)
    assert card.decrypt_dgi_data(enc) == blob
    assert isinstance(host, SecureChannel) and isinstance(card, CardSecureChannel)


def _open(host: Scp03Host, card: Scp03Card) -> None:
    resp = card.initialize_update(host.initialize_update())
    host.process_external_authenticate_response(
        card.external_authenticate(host.process_initialize_update_response(resp))
    )
    assert host.is_open and card.is_open


_APDUS = st.builds(
    CommandAPDU,
    cla=st.sampled_from([0x80, 0x00, 0x81]),
    ins=st.sampled_from([0xE2, 0xE6, 0xF0, 0xCA]),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=200),
    le=st.one_of(st.none(), st.integers(1, 256)),
)
_LEVEL_I = [
    (lvl, i)
    for lvl in LEVELS
    for i in (0x00, 0x10, 0x70, 0x30)
    if not ((lvl & 0x10 and not i & 0x20) or (lvl & 0x20 and not i & 0x40))
]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_LEVEL_I),
    st.sampled_from([AES128, AES192, AES256]),
    st.lists(
        st.tuples(_APDUS, st.binary(max_size=64), st.sampled_from([0x9000, 0x6A82, 0x6310])),
        min_size=1,
        max_size=4,
    ),
    st.data(),
)
def test_host_and_card_agree(
    level_i: tuple[int, int],
    keys: gp.StaticKeys,
    exchanges: list[tuple[CommandAPDU, bytes, int]],
    data: st.DataObject,
) -> None:
    level, i = level_i
    card = Scp03Card(keys, kvn=0x30, seq_counter=data.draw(st.integers(0, 1000)), i=i)
    host = Scp03Host(keys, level)
    _open(host, card)
    for cmd, rdata, sw in exchanges:
        plain = cmd.to_bytes()
        assert card.unwrap_command(host.wrap(plain)) == plain
        assert host.unwrap(card.wrap_response(rdata, sw)) == rdata + sw.to_bytes(2, "big")
    if level:
        cmd = exchanges[0][0]
        wrapped = bytearray(host.wrap(cmd.to_bytes()))
        pos = data.draw(st.integers(0, len(wrapped) - 1 - (cmd.le is not None)))
        wrapped[pos] ^= data.draw(st.integers(1, 255))
        with pytest.raises((MacMismatch, DecodeError)) as info:
            card.unwrap_command(bytes(wrapped))
        if info.type is MacMismatch:
            assert not card.is_open


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([lv for lv, i in _LEVEL_I if lv & 0x10]), st.binary(max_size=64), st.data())
def test_response_tamper(level: int, rdata: bytes, data: st.DataObject) -> None:
    card = Scp03Card(AES128, kvn=0x30, i=0x70)
    host = Scp03Host(AES128, level)
    _open(host, card)
    card.unwrap_command(host.wrap(GET_EID))
    resp = bytearray(card.wrap_response(rdata, 0x9000))
    pos = data.draw(st.integers(0, len(resp) - 3))
    resp[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(MacMismatch):
        host.unwrap(bytes(resp))
