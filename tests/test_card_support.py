"""Helpers for the virtual-card tests (no tests here): a host that authenticates with the HOST
classes of cardperso.protocol, installs and personalizes applications per docs/card-dgi-map.md,
and sample SSSE / PBOC personalization data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cardperso.card import VirtualCard
from cardperso.card.ssse import SSSE_NAME
from cardperso.card.state import GP_TEST_KEY
from cardperso.card.vcard import PBOC_MODULE, PBOC_PACKAGE, SSSE_MODULE, SSSE_PACKAGE
from cardperso.codec import simpletlv, tlv
from cardperso.crypto import emv
from cardperso.crypto import primitives as cp
from cardperso.crypto.gp import StaticKeys
from cardperso.protocol.scp02 import Scp02Host
from cardperso.protocol.scp03 import Scp03Host
from cardperso.protocol.storedata import DgiItem, StoreDataConventions, build_store_data
from cardperso.sim.inprocess import InProcessTransport

PBOC_AID = bytes.fromhex("A000000333010101")
ISD_SELECT = bytes.fromhex("00A4040008A000000151000000")

# Issuer master keys for the PBOC tests (project-generated test values, not published keys).
IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
IMK_SMI = bytes.fromhex("11112222333344445555666677778888")
IMK_SMC = bytes.fromhex("8888777766665555444433332222111F")
PAN, PSN = "6214830000000019", "01"


def gp_test_keys(scp: str) -> StaticKeys:
    return StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY, "3DES" if scp == "02" else "AES")


def split(response: bytes) -> tuple[bytes, int]:
    return response[:-2], int.from_bytes(response[-2:], "big")


@dataclass
class Host:
    """A personalization host talking to one card in-process."""

    card: VirtualCard
    scp: str = "02"
    transport: InProcessTransport = field(init=False)
    channel: Scp02Host | Scp03Host | None = None

    def __post_init__(self) -> None:
        self.transport = InProcessTransport(self.card)
        self.transport.connect()

    def send(self, apdu: bytes | str) -> tuple[bytes, int]:
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        return split(self.transport.transmit(raw))

    def ok(self, apdu: bytes | str) -> bytes:
        data, sw = self.send(apdu)
        assert sw == 0x9000, f"{sw:04X}"
        return data

    def secure(self, apdu: bytes | str) -> tuple[bytes, int]:
        raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
        assert self.channel is not None
        response = self.transport.transmit(self.channel.wrap(raw))
        return split(self.channel.unwrap(response))

    def authenticate(self, level: int = 0x01, keys: StaticKeys | None = None, kvn: int = 0) -> int:
        """SELECT the ISD, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE; returns the SW."""
        keys = keys or gp_test_keys(self.scp)
        self.ok(ISD_SELECT)
        host: Scp02Host | Scp03Host
        host = Scp02Host(keys, level, kvn=kvn) if self.scp == "02" else Scp03Host(keys, level, kvn)
        resp = self.transport.transmit(host.initialize_update())
        assert resp[-2:] == b"\x90\x00", resp.hex()
        ext = host.process_initialize_update_response(resp)
        resp = self.transport.transmit(ext)
        sw = int.from_bytes(resp[-2:], "big")
        if sw == 0x9000:
            host.process_external_authenticate_response(resp)
            self.channel = host
        return sw

    def install(self, package: bytes, module: bytes, aid: bytes) -> None:
        data = b"".join(bytes((len(x),)) + x for x in (package, module, aid, b"\x00", b"\xc9\x00"))
        data += b"\x00"
        _, sw = self.secure(bytes((0x80, 0xE6, 0x0C, 0x00, len(data))) + data)
        assert sw == 0x9000, f"INSTALL {sw:04X}"

    def install_for_perso(self, aid: bytes) -> int:
        data = b"\x00\x00" + bytes((len(aid),)) + aid + b"\x00\x00\x00"
        return self.secure(bytes((0x80, 0xE6, 0x20, 0x00, len(data))) + data)[1]

    def store_data(self, dgis: list[tuple[int, bytes, bool]], *, pack: bool = False) -> list[int]:
        """STORE DATA built by the protocol module's host side (padding per the DGI map:
        80-pad only when unaligned); one DGI per command unless ``pack``; returns the SWs."""
        assert self.channel is not None
        conv = StoreDataConventions(block_size=8 if self.scp == "02" else 16, pack=pack)
        items = [DgiItem(d, v, e) for d, v, e in dgis]
        apdus = build_store_data(items, conv, self.channel.encrypt_dgi_data)
        return [self.secure(apdu)[1] for apdu in apdus]

    def personalize(self, aid: bytes, dgis: list[tuple[int, bytes, bool]]) -> None:
        assert self.install_for_perso(aid) == 0x9000
        sws = self.store_data(dgis)
        assert all(sw == 0x9000 for sw in sws), [f"{sw:04X}" for sw in sws]


def new_card(tmp_path: Path, scp: str = "02", **kw: object) -> VirtualCard:
    card = VirtualCard.create_blank(tmp_path / "card.json", scp=scp, **kw)  # type: ignore[arg-type]
    card.strict = True
    return card


# -- sample SSSE data ---------------------------------------------------------------------------

SSSE_KEYS = {
    0x01: bytes.fromhex("0102030405060708090A0B0C0D0E0F10"),  # IRK
    0x0A: bytes.fromhex("A1A2A3A4A5A6A7A8A9AAABACADAEAFA0"),  # read key
    0x04: bytes.fromhex("4142434445464748494A4B4C4D4E4F40"),  # EF05/EF06 update
    0x0D: bytes.fromhex("D1D2D3D4D5D6D7D8D9DADBDCDDDEDFD0"),  # EF0D update
}
EF05 = [
    simpletlv.encode(0x01, bytes.fromhex("360400D156000005") + bytes.fromhex("01020304AABBCCDD")),
    simpletlv.encode(0x02, b"3"),
    simpletlv.encode(0x03, b"3.00"),
    simpletlv.encode(0x04, bytes.fromhex("360400000000000000000001")),
    simpletlv.encode(0x05, bytes.fromhex("20240101")),
    simpletlv.encode(0x06, bytes.fromhex("20340101")),
    simpletlv.encode(0x07, b"X00000019"),
]
EF06 = [
    simpletlv.encode(0x08, b"360426199101010071"),
    simpletlv.encode(0x09, "张三".encode("gbk").ljust(30, b"\x00")),
    simpletlv.encode(0x4E, bytes(20)),
    simpletlv.encode(0x0A, b"1"),
    simpletlv.encode(0x0B, bytes.fromhex("01")),
    simpletlv.encode(0x0C, bytes.fromhex("360426")),
    simpletlv.encode(0x0D, bytes.fromhex("19910101")),
]
EF0D = [simpletlv.encode(0xEA, b"ABCDEFGHIJKL"), simpletlv.encode(0xEB, bytes.fromhex("360426"))]


def ssse_dgis(algorithm: int = 0x03, generation: int = 3) -> list[tuple[int, bytes, bool]]:
    out: list[tuple[int, bytes, bool]] = [(0x9F0C, bytes((algorithm, generation)), False)]
    out += [(0x0500 + i, rec, False) for i, rec in enumerate(EF05, 1)]
    out += [(0x0600 + i, rec, False) for i, rec in enumerate(EF06, 1)]
    out += [(0x0D00 + i, rec, False) for i, rec in enumerate(EF0D, 1)]
    out += [(0x8F00 + kid, key, True) for kid, key in SSSE_KEYS.items()]
    out += [(0x8F10, bytes.fromhex("26123456FFFFFFFF"), True), (0x9F10, b"\x03\x03", False)]
    return out


def install_ssse(host: Host) -> None:
    host.install(SSSE_PACKAGE, SSSE_MODULE, SSSE_NAME)


# -- sample PBOC data ---------------------------------------------------------------------------

PDOL = bytes.fromhex("9F7A019F02065F2A02")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
CDOL2 = bytes.fromhex("8A02") + CDOL1
IAD = bytes.fromhex("07010103A00000010A01000000000000000000")  # PBOC 9F10, 19 bytes
AIP_DEBIT = bytes.fromhex("7C00")
AIP_EC = bytes.fromhex("7C00")


def card_master_keys() -> tuple[bytes, bytes, bytes]:
    """ICC master keys by option A (EMV Book 2 A1.4.1) from the test IMKs."""
    return (
        emv.derive_icc_master_key_a(IMK_AC, PAN, PSN),
        emv.derive_icc_master_key_a(IMK_SMI, PAN, PSN),
        emv.derive_icc_master_key_a(IMK_SMC, PAN, PSN),
    )


def pboc_dgis(
    balance: int = 0, limit: int = 15000, single: int = 1000
) -> list[tuple[int, bytes, bool]]:
    fci = tlv.encode(0x50, b"PBOC DEBIT") + tlv.encode(0x87, b"\x01") + tlv.encode(0x9F38, PDOL)
    gpo = tlv.encode(0x82, AIP_DEBIT) + tlv.encode(0x94, bytes.fromhex("0801010010010200"))
    gpo_ec = tlv.encode(0x82, AIP_EC) + tlv.encode(0x94, bytes.fromhex("0801010010010200"))
    rec0101 = tlv.encode(0x70, tlv.encode(0x57, bytes.fromhex("6214830000000019D34012011234567F")))
    rec0201 = tlv.encode(
        0x70,
        tlv.encode(0x5A, bytes.fromhex(PAN))
        + tlv.encode(0x5F34, bytes.fromhex(PSN))
        + tlv.encode(0x8C, CDOL1)
        + tlv.encode(0x8D, CDOL2),
    )
    rec0202 = tlv.encode(0x70, tlv.encode(0x5F20, b"ZHANG/SAN"))
    ec = (
        tlv.encode(0x9F79, bytes.fromhex(f"{balance:012d}"))
        + tlv.encode(0x9F77, bytes.fromhex(f"{limit:012d}"))
        + tlv.encode(0x9F78, bytes.fromhex(f"{single:012d}"))
        + tlv.encode(0x9F6D, bytes.fromhex(f"{1500:012d}"))
        + tlv.encode(0x9F51, bytes.fromhex("0156"))
        + tlv.encode(0x9F74, b"ECC001")
    )
    mks = card_master_keys()
    return [
        (0x9102, fci, False),
        (0x9104, gpo, False),
        (0x9203, gpo_ec, False),
        (0x9200, IAD, False),
        (0x0101, rec0101, False),
        (0x0201, rec0201, False),
        (0x0202, rec0202, False),
        (0x0D01, ec, False),
        (0x8000, b"".join(mks), True),
        (0x9000, b"".join(cp.kcv("3DES", k) for k in mks), False),
        (0x8010, bytes.fromhex("241234FFFFFFFFFF"), True),
        (0x9010, b"\x03\x03", False),
    ]


def install_pboc(host: Host) -> None:
    host.install(PBOC_PACKAGE, PBOC_MODULE, PBOC_AID)
