"""The native-COS virtual chip (cardperso.card.native): FMCOS 2.0-style file system, keys with
rights and error counters, line protection that refuses a wrong MAC, faults, and vpcd.

The host side here is built by hand from :mod:`cardperso.protocol.fmcos` (the driver of
issue 12 item 3 uses the same module)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.card.faults import CardTorn
from cardperso.card.native import NATIVE_TEST_KEY, NativeCard, build_native_atr
from cardperso.crypto import ecb_encrypt
from cardperso.crypto.ssse import diversify_one
from cardperso.devices.pcsc import PcscTransport
from cardperso.profiles.chips import parse_chip
from cardperso.protocol.fmcos import KeyRecord, encode_key, protect
from fixtures_pcsc import LabSlot

SSSE = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" in GBK
RK = bytes(range(0x20, 0x30))  # read key 0A
IRK = bytes(range(0x30, 0x40))  # internal authentication key 01
OK = b"\x90\x00"


class Host:
    """Hand-made host commands for the tests."""

    def __init__(self, card: NativeCard, transport: bytes = NATIVE_TEST_KEY) -> None:
        self.card, self.transport = card, transport
        self.algorithm = card.state.algorithm

    def send(self, apdu: bytes | str) -> tuple[bytes, int]:
        raw = self.card.transmit(bytes.fromhex(apdu) if isinstance(apdu, str) else apdu)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def sw(self, apdu: bytes | str) -> int:
        return self.send(apdu)[1]

    def challenge(self) -> bytes:
        data, sw = self.send("0084000008")
        assert sw == 0x9000 and len(data) == 8
        return data

    def ext_auth(self, key_id: int, key: bytes) -> int:
        block = 16 if self.algorithm == "SM4" else 8
        cryptogram = ecb_encrypt(self.algorithm, key, self.challenge().ljust(block, b"\0"))
        return self.sw(bytes((0x00, 0x82, 0x00, key_id, len(cryptogram))) + cryptogram)

    def write_key(self, key_id: int, record: KeyRecord, *, p1: int = 0x01, key: bytes = b"",
                  tamper: bool = False) -> int:  # fmt: skip
        header = bytes((0x84, 0xD4, p1, key_id))
        apdu = bytearray(protect(header, encode_key(record), self.algorithm,
                                 key or self.transport, self.challenge(), encrypt=True))  # fmt: skip
        if tamper:
            apdu[-1] ^= 0x01
        return self.sw(bytes(apdu))

    def update_record(
        self, sfi: int, rec: int, data: bytes, *, mac: bool, tamper: bool = False
    ) -> int:
        if not mac:
            return self.sw(bytes((0x00, 0xDC, rec, sfi << 3 | 4, len(data))) + data)
        header = bytes((0x04, 0xDC, rec, sfi << 3 | 4))
        apdu = bytearray(protect(header, data, self.algorithm, self.transport, self.challenge(),
                                 encrypt=False))  # fmt: skip
        if tamper:
            apdu[6] ^= 0x01
        return self.sw(bytes(apdu))


def _blank(tmp_path: Path, algorithm: str = "SM4") -> NativeCard:
    card = NativeCard.create_blank(
        tmp_path / "chip.json", serial=bytes.fromhex("0A0B0C0D"), algorithm=algorithm
    )
    card.power_on()
    return card


def _make_df(host: Host) -> None:
    """MF authenticated with the transport key, the SSSE DF with its key file and EF05."""
    assert host.sw("00A40000023F00") == 0x9000
    assert host.ext_auth(0x00, NATIVE_TEST_KEY) == 0x9000
    df = bytes.fromhex("38 0600 F1 F1 95 FFFF") + SSSE
    assert host.sw(bytes((0x80, 0xE0, 0xDF, 0x01, len(df))) + df) == 0x9000
    assert host.send(b"\x00\xa4\x04\x00" + bytes((len(SSSE),)) + SSSE)[1] == 0x9000
    assert host.sw("80E00000063F010001F0FF") == 0x6700, "a key file's data is 7 bytes"
    assert host.sw("80E0EF05072C0840F2F3FFFF") == 0x6985, "the key file comes first"
    assert host.sw("80E00000073F010001F0FFFF") == 0x9000  # key file, 256 bytes, add right F0
    # EF05: variable records (8 records of up to 64 bytes), read right F2, write right F3
    assert host.sw("80E0EF05072C0840F2F3FFFF") == 0x9000


@pytest.mark.parametrize("algorithm", ["SM4", "3DES"])
def test_a_df_made_read_and_protected_by_hand(tmp_path: Path, algorithm: str) -> None:
    card = _blank(tmp_path, algorithm)
    host = Host(card)
    assert card.atr == build_native_atr(bytes.fromhex("0A0B0C0D"), algorithm)
    # nothing is created in the MF before the transport key is authenticated
    assert host.sw("00A40000023F00") == 0x9000
    assert host.sw("80E0DF011738 0600 F1 F1 95 FFFF" + SSSE.hex()) == 0x6982
    wrong = bytes(16) if algorithm == "SM4" else bytes.fromhex("0123456789ABCDEF1032547698BADCFE")
    assert host.ext_auth(0x00, wrong) == 0x63C4, "a wrong transport key counts one failure"
    assert NativeCard.load(card.path).state.mf.keys[0].fourth == 0x54, "the count is persistent"
    assert host.sw("0082000010" + "00" * 16) == 0x6985, "no challenge: refused"
    _make_df(host)
    assert card.state.mf.keys[0].fourth == 0x55, "a success restores the tries"
    assert host.sw("80E0DF011738 0600 F1 F1 95 FFFF" + SSSE.hex()) == 0x6A8A, "that DF name exists"
    # keys: never in plain, never with a wrong MAC, never without a fresh challenge
    rk = KeyRecord(0x39, 0xF0, 0xF1, 0x22, 0x33, RK)
    assert host.sw("80D4010A15" + encode_key(rk).hex()) == 0x6982
    assert host.write_key(0x0A, rk, tamper=True) == 0x6988
    assert host.write_key(0x0A, rk, key=bytes(range(16))) == 0x6988, "not the transport key"
    assert card.state.mf.dfs[0].keys == []
    assert host.write_key(0x0A, rk) == 0x9000
    assert host.write_key(0x0A, rk) == 0x6A89, "key 0A of type 39 exists"
    assert host.write_key(0x01, KeyRecord(0x34, 0xF0, 0xF1, 0x01, 0x04 if algorithm == "SM4" else 0x00, IRK)) == 0x9000  # fmt: skip
    assert host.write_key(0x00, KeyRecord(0x3A, 0xF0, 0xEF, 0x11, 0x33, bytes.fromhex("123456"))) == 0x9000  # fmt: skip
    # records: line-protected (MAC under the transport key) or plain while the DF is made
    record = bytes.fromhex("0110") + bytes(range(16))
    assert host.update_record(5, 1, record, mac=True, tamper=True) == 0x6988
    assert host.update_record(5, 1, record, mac=True) == 0x9000
    assert host.update_record(5, 2, b"\x02\x01\x33", mac=False) == 0x9000
    assert host.update_record(5, 9, b"\x02\x01\x33", mac=False) == 0x6A83
    assert host.update_record(5, 3, bytes(65), mac=False) == 0x6700
    assert host.sw("80E0000100") == 0x9000  # END OF CREATION: rights hold from now on
    # a terminal's reads: external authentication with the read key (state 2), then READ RECORD
    assert host.sw("00B2012C00") == 0x6982
    assert host.ext_auth(0x0A, bytes(16)) == 0x63C2
    assert host.ext_auth(0x0A, RK) == 0x9000
    assert host.send("00B2012C00") == (record, 0x9000)
    assert host.sw("00B2032C00") == 0x6A83, "never written"
    assert host.update_record(5, 2, b"\x02\x01\x44", mac=False) == 0x6982, "write right F3"
    factor, rnd = bytes(range(8)), bytes(range(8, 16))
    answer, sw = host.send("0088000110" + (factor + rnd).hex())
    assert sw == 0x9000
    assert answer == ecb_encrypt(algorithm, diversify_one(IRK, algorithm, factor), rnd + bytes(8))
    # PIN: counted, then verified (state 1 < F2: the records are closed again)
    assert host.sw("0020000003999999") == 0x63C2
    assert host.sw("0020000003123456") == 0x9000
    assert host.sw("00B2012C00") == 0x6982
    assert host.sw("805E01000712345 6FF654321".replace(" ", "")) == 0x9000
    assert host.sw("0020000003654321") == 0x9000
    # power cycle: the security state is gone, the file system stays (image on disk too)
    card.power_off()
    card.power_on()
    assert host.send(b"\x00\xa4\x04\x00\x05" + SSSE[:5])[1] == 0x9000
    assert host.sw("00B2012C00") == 0x6982
    again = NativeCard.load(card.path)
    assert again.state == card.state
    assert again.state.mf.dfs[0].efs[0].records[:2] == [record, b"\x02\x01\x33"]


def test_a_tear_in_create_file_or_write_key_leaves_the_last_commit(tmp_path: Path) -> None:
    card = _blank(tmp_path)
    host = Host(card)
    assert host.sw("00A40000023F00") == 0x9000
    assert host.ext_auth(0x00, NATIVE_TEST_KEY) == 0x9000
    before = card.path.read_bytes()
    card.faults.tear_next_write = True
    with pytest.raises(CardTorn):
        host.sw("80E0DF011738 0600 F1 F1 95 FFFF" + SSSE.hex())
    assert not card.powered and card.path.read_bytes() == before
    assert NativeCard.load(card.path).state.mf.dfs == []
    card.power_on()
    _make_df(host)
    made = card.path.read_bytes()
    card.faults.tear_next_write = True
    with pytest.raises(CardTorn):
        host.write_key(0x0A, KeyRecord(0x39, 0xF0, 0xF1, 0x22, 0x33, RK))
    assert card.path.read_bytes() == made and card.state.mf.dfs[0].keys == []
    assert not card.powered


def test_erase_df_needs_its_right_and_empties_the_df(tmp_path: Path) -> None:
    card = _blank(tmp_path)
    host = Host(card)
    assert host.sw("00A40000023F00") == 0x9000
    assert host.sw("800E000000") == 0x6982
    _make_df(host)
    assert host.sw("00A40000023F00") == 0x9000
    assert host.ext_auth(0x00, NATIVE_TEST_KEY) == 0x9000
    assert host.sw("800E000000") == 0x9000
    assert card.state.mf.dfs == [] and card.state.mf.keys == []


@settings(max_examples=300, deadline=None)
@given(apdu=st.binary(min_size=0, max_size=40))
def test_fuzzed_commands_never_crash_the_chip(
    tmp_path_factory: pytest.TempPathFactory, apdu: bytes
) -> None:
    card = NativeCard.create_blank(tmp_path_factory.mktemp("fuzz") / "c.json", serial=b"\0\0\0\1")
    card.strict = True
    card.power_on()
    for prefix in (b"", b"\x80\xe0", b"\x84\xd4", b"\x04\xdc", b"\x00\xa4"):
        answer = card.transmit(prefix + apdu)
        assert len(answer) >= 2


def test_the_chip_behind_pcscd_and_vpcd(pcsc_slot: LabSlot, tmp_path: Path) -> None:
    card = NativeCard.create_blank(tmp_path / "chip.json", serial=bytes.fromhex("01020304"))
    chip = parse_chip(
        "name: fm\ntitle: x\ncos: native\nhistorical: '00 43 50 46 4D 03'\nalgorithm: SM4\n"
        "serial_offset: 6\n"
        "transport_key: {scheme: native-master-key, key: native-transport}\n"
        "limits: {max_data: 239}\ncommands: [SELECT]\n"
    )
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        assert t.atr == card.atr and chip.matches(t.atr) and chip.serial(t.atr) == card.serial
        assert t.transmit(bytes.fromhex("00A40000023F00"))[-2:] == OK
        challenge = t.transmit(bytes.fromhex("0084000008"))
        assert challenge[-2:] == OK and len(challenge) == 10
        cryptogram = ecb_encrypt("SM4", NATIVE_TEST_KEY, challenge[:8] + bytes(8))
        assert t.transmit(bytes.fromhex("0082000010") + cryptogram) == OK
    pcsc_slot.remove()


@settings(max_examples=200, deadline=None)
@given(apdu=st.binary(min_size=4, max_size=60), cla=st.sampled_from([0x00, 0x04, 0x80, 0x84]))
def test_fuzzed_commands_never_crash_a_chip_being_made(
    tmp_path_factory: pytest.TempPathFactory, apdu: bytes, cla: int
) -> None:
    card = NativeCard.create_blank(tmp_path_factory.mktemp("fz") / "c.json", serial=b"\0\0\0\2")
    card.power_on()
    _make_df(Host(card))
    card.strict = True
    answer = card.transmit(bytes((cla,)) + apdu[1:])
    assert len(answer) >= 2
    assert NativeCard.load(card.path).state == card.state, "what is committed is what it holds"


def test_images_of_the_two_kinds_are_told_apart(tmp_path: Path) -> None:
    from cardperso.card.state import card_image
    from cardperso.card.vcard import VirtualCard
    from cardperso.errors import DataError

    native = NativeCard.create_blank(tmp_path / "n.json", serial=b"\0\0\0\3")
    gp = VirtualCard.create_blank(tmp_path / "g.json", serial=b"\0\0\0\4")
    assert card_image(native.path) is None, "GP tools skip native chip images"
    with pytest.raises(DataError, match="not a cardperso-native/1 chip image"):
        NativeCard.load(gp.path)
    (tmp_path / "bad.json").write_text('{"format": "cardperso-native/1", "chip": {"serial": 1}}')
    with pytest.raises(DataError):
        NativeCard.load(tmp_path / "bad.json")
    assert NativeCard.load(native.path).state == native.state


def test_a_key_is_changed_only_under_its_modification_right(tmp_path: Path) -> None:
    card = _blank(tmp_path)
    host = Host(card)
    _make_df(host)
    rk = KeyRecord(0x39, 0xF0, 0xF2, 0x22, 0x33, RK)  # change right F2: state 2 or more
    assert host.write_key(0x0A, rk) == 0x9000
    assert host.sw("80E0000100") == 0x9000  # END OF CREATION
    new = KeyRecord(0x39, 0xF0, 0xF2, 0x22, 0x33, bytes(range(0x50, 0x60)))
    assert host.write_key(0x0A, new, p1=0x39) == 0x6982, "state 0: the change right is not met"
    assert host.write_key(0x0A, new) == 0x6A89, "adding it again is refused"
    assert host.ext_auth(0x0A, RK) == 0x9000  # state 2
    assert host.write_key(0x0B, new, p1=0x39) == 0x6A88, "no key 0B to change"
    assert host.write_key(0x0A, new, p1=0x39) == 0x9000
    assert card.state.mf.dfs[0].key(0x0A).value == bytes(range(0x50, 0x60))  # type: ignore[union-attr]
    assert host.ext_auth(0x0A, RK) == 0x63C2, "the old key no longer authenticates"
