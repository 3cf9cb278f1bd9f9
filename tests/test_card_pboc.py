"""The PBOC debit / e-cash application: PSE/PPSE, GPO, READ RECORD, GENERATE AC verified with
the issuer master key (EMV option A), ARPC, issuer-script EC loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card import VirtualCard
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.errors import CryptogramMismatch
from test_card_support import (
    AIP_DEBIT,
    IAD,
    IMK_AC,
    IMK_SMI,
    PAN,
    PBOC_AID,
    PSN,
    Host,
    install_pboc,
    new_card,
    pboc_dgis,
)

SELECT_PBOC = bytes((0, 0xA4, 4, 0, len(PBOC_AID))) + PBOC_AID


def personalized(tmp_path: Path, balance: int = 0) -> Host:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    host.personalize(PBOC_AID, pboc_dgis(balance=balance))
    return host


def cdol1(amount: int, un: bytes = bytes.fromhex("11223344")) -> bytes:
    return (
        bytes.fromhex(f"{amount:012d}")
        + bytes(6)
        + bytes.fromhex("0156")
        + bytes(5)
        + bytes.fromhex("0156")
        + bytes.fromhex("261122")
        + b"\x00"
        + un
    )


def gpo(host: Host, ec: bool, amount: int = 0) -> bytes:
    pdol = (b"\x01" if ec else b"\x00") + bytes.fromhex(f"{amount:012d}") + bytes.fromhex("0156")
    data = b"\x83" + bytes((len(pdol),)) + pdol
    return host.ok(bytes((0x80, 0xA8, 0, 0, len(data))) + data + b"\x00")


def generate_ac(host: Host, p1: int, data: bytes) -> dict[int, bytes]:
    resp = host.ok(bytes((0x80, 0xAE, p1, 0, len(data))) + data + b"\x00")
    return tlv.to_dict(tlv.parse_one(resp))


def get_data(host: Host, tag: int) -> bytes:
    resp = host.ok(bytes((0x80, 0xCA, tag >> 8, tag & 0xFF, 0)))
    return tlv.parse_one(resp).value


def issuer_keys(atc: bytes) -> tuple[bytes, bytes]:
    """Issuer side: ICC master keys by option A, then PBOC's session keys (9F10 CVN 01)."""
    mk_ac = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    mk_smi = emv.derive_icc_master_key_a(IMK_SMI, PAN, PSN)
    return emv.session_key_pboc(mk_ac, atc), emv.session_key_pboc(mk_smi, atc)


def test_option_a_vector_from_reference() -> None:
    # pyemv docs vector quoted in globalplatform-emv.md: the issuer side the tests rely on
    mk = emv.derive_icc_master_key_a(
        bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), "99012345678901234", "45"
    )
    assert mk == bytes.fromhex("67F8292358083E5EA7AB7FDA58D53B6B")


def test_pse_and_ppse(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    fci = host.ok(b"\x00\xa4\x04\x00\x0e1PAY.SYS.DDF01\x00")
    assert tlv.to_dict(tlv.parse_one(fci))[0x88] == b"\x01"
    record = tlv.to_dict(tlv.parse_one(host.ok("00B2010C00")))
    assert record[0x4F] == PBOC_AID and record[0x50] == b"PBOC DEBIT"
    ppse = tlv.to_dict(tlv.parse_one(host.ok(b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00")))
    assert ppse[0x4F] == PBOC_AID


def test_arqc_verifies_with_issuer_master_key(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    fci = tlv.to_dict(tlv.parse_one(host.ok(SELECT_PBOC)))
    assert fci[0x84] == PBOC_AID and fci[0x50] == b"PBOC DEBIT"
    gpo_resp = tlv.to_dict(tlv.parse_one(gpo(host, ec=False)))
    assert gpo_resp[0x82] == AIP_DEBIT
    afl = gpo_resp[0x94]
    records = {}
    for i in range(0, len(afl), 4):
        sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
        for rec in range(first, last + 1):
            records[(sfi, rec)] = host.ok(bytes((0, 0xB2, rec, sfi << 3 | 4, 0)))
    assert tlv.to_dict(tlv.parse_one(records[(2, 1)]))[0x5A] == bytes.fromhex(PAN)
    data = cdol1(12345)
    ac = generate_ac(host, 0x80, data)
    assert ac[0x9F27] == b"\x80"
    atc = ac[0x9F36]
    assert atc == b"\x00\x01" and get_data(host, 0x9F36) == atc
    sk_ac, _ = issuer_keys(atc)
    # the issuer takes the CVR from the IAD the card sent (9F10 bytes 4-7): the card fills it
    iad = ac[0x9F10]
    assert iad[:3] + iad[7:15] == IAD[:3] + IAD[7:15]  # then the EC balance MAC (4 bytes)
    # 2nd AC not requested, 1st AC = ARQC; byte 3 10 = new card (no online transaction yet: the
    # CVR a public qPBOC card test expects of a new card going online, "A01000")
    assert iad[3:7] == bytes.fromhex("03A01000")
    emv.verify_application_cryptogram(sk_ac, data + AIP_DEBIT + atc + iad[3:7], ac[0x9F26])
    with pytest.raises(CryptogramMismatch):
        emv.verify_application_cryptogram(
            sk_ac, cdol1(12346) + AIP_DEBIT + atc + iad[3:7], ac[0x9F26]
        )
    # ARPC method 1, then the second GENERATE AC gives a TC
    arpc = emv.arpc_method1(sk_ac, ac[0x9F26], b"00")
    assert host.send(b"\x00\x82\x00\x00\x0a" + arpc + b"00")[1] == 0x9000
    assert get_data(host, 0x9F13) == atc
    tc = generate_ac(host, 0x40, b"00" + data)
    assert tc[0x9F27] == b"\x40"
    assert tc[0x9F10][3:7] == bytes.fromhex("03601000")  # 2nd AC = TC, 1st AC = ARQC, new card
    cvr = tc[0x9F10][3:7]
    # the TC covers the minimum data set again (CDOL2's 8A ARC is not part of it)
    emv.verify_application_cryptogram(sk_ac, data + AIP_DEBIT + atc + cvr, tc[0x9F26])
    # the ATC increments with every transaction, across power cycles
    host.card.power_off()
    host.transport.connect()
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    assert get_data(host, 0x9F36) == b"\x00\x02"


def test_bad_arpc_refused(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    generate_ac(host, 0x80, cdol1(100))
    assert host.send(b"\x00\x82\x00\x00\x0a" + bytes(8) + b"00")[1] == 0x6300
    assert host.send(b"\x00\x82\x00\x00\x0a" + bytes(8) + b"00")[1] == 0x6985
    tc = generate_ac(host, 0x40, b"00" + cdol1(100))
    assert tc[0x9F27] == b"\x00"  # issuer authentication failed: AAC


def online_load(
    host: Host, new_balance: int, *, good_mac: bool = True, sent: list[bytes] | None = None
) -> int:
    """ARQC, ARPC, then the issuer script PUT DATA 9F79; returns the script's SW."""
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    ac = generate_ac(host, 0x80, cdol1(0))
    atc, arqc = ac[0x9F36], ac[0x9F26]
    sk_ac, sk_smi = issuer_keys(atc)
    arpc = emv.arpc_method1(sk_ac, arqc, b"00")
    assert host.send(b"\x00\x82\x00\x00\x0a" + arpc + b"00")[1] == 0x9000
    header, value = bytes.fromhex("04DA9F79"), bytes.fromhex(f"{new_balance:012d}")
    mac = emv.issuer_script_mac(sk_smi, emv.issuer_script_mac_input(header, atc, arqc, value))[:4]
    if not good_mac:
        mac = bytes(b ^ 0xFF for b in mac)
    script = header + b"\x0a" + value + mac
    if sent is not None:
        sent.append(script)
    sw = host.send(script)[1]
    if sw == 0x9000:
        assert host.send(script)[1] == 0x6985  # replay in the same transaction
    return sw


def test_ec_load_only_with_correct_mac(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    assert online_load(host, 5000, good_mac=False) == 0x6988
    assert get_data(host, 0x9F79) == bytes.fromhex("000000000000")
    assert online_load(host, 5000) == 0x9000
    assert get_data(host, 0x9F79) == bytes.fromhex("000000005000")
    # above the balance limit (150.00): refused, unchanged
    assert online_load(host, 15001) == 0x6A80
    assert get_data(host, 0x9F79) == bytes.fromhex("000000005000")
    assert VirtualCard.load(host.card.path).state.pboc.ec_balance == 5000


def test_script_needs_issuer_authentication(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    generate_ac(host, 0x80, cdol1(0))
    assert host.send("04DA9F790A" + "000000005000" + "00000000")[1] == 0x6985


def test_ec_offline_purchase(tmp_path: Path) -> None:
    host = personalized(tmp_path, balance=5000)
    for amount, cid, balance in [
        (1001, b"\x00", 5000),  # above the single-transaction limit (10.00): AAC
        (800, b"\x40", 4200),
        (1000, b"\x40", 3200),
    ]:
        host.ok(SELECT_PBOC)
        gpo(host, ec=True, amount=amount)
        ac = generate_ac(host, 0x40, cdol1(amount))
        assert ac[0x9F27] == cid
        assert get_data(host, 0x9F79) == bytes.fromhex(f"{balance:012d}")
    # TC on the debit path goes online
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    assert generate_ac(host, 0x40, cdol1(100))[0x9F27] == b"\x80"


def test_ec_purchase_above_balance_refused(tmp_path: Path) -> None:
    host = personalized(tmp_path, balance=500)
    host.ok(SELECT_PBOC)
    gpo(host, ec=True, amount=600)
    assert generate_ac(host, 0x40, cdol1(600))[0x9F27] == b"\x00"
    assert get_data(host, 0x9F79) == bytes.fromhex("000000000500")


def test_get_data_objects(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    assert get_data(host, 0x9F77) == bytes.fromhex("000000015000")
    assert get_data(host, 0x9F78) == bytes.fromhex("000000001000")
    assert get_data(host, 0x9F6D) == bytes.fromhex("000000001500")
    assert get_data(host, 0x9F17) == b"\x03"
    assert get_data(host, 0x9F74) == b"ECC001"
    assert host.send("80CA9F1000")[1] == 0x6A88


def test_offline_pin(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    assert host.send("0020008008241234FFFFFFFFFF")[1] == 0x9000
    assert host.send("0020008008241235FFFFFFFFFF")[1] == 0x63C2
    assert get_data(host, 0x9F17) == b"\x02"
    assert host.send("0020008008241234FFFFFFFFFF")[1] == 0x9000
    assert get_data(host, 0x9F17) == b"\x03"


def test_wrong_kcv_refused_at_store_data(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    dgis = [d for d in pboc_dgis() if d[0] in (0x8000, 0x9000)]
    dgis[1] = (0x9000, bytes(9), False)
    assert host.install_for_perso(PBOC_AID) == 0x9000
    assert host.store_data(dgis) == [0x9000, 0x6A80]
    assert host.card.state.pboc.dgis.get("9000") is None


@pytest.mark.parametrize("scp", ["02", "03"])
def test_packed_store_data_with_a_dgi_spanning_commands(tmp_path: Path, scp: str) -> None:
    host = Host(new_card(tmp_path, scp), scp)
    host.authenticate(0x03)
    install_pboc(host)
    big = tlv.encode(0x70, tlv.encode(0x90, bytes(range(256)) + bytes(144)))
    dgis = [*pboc_dgis(), (0x0301, big, False)]
    assert host.install_for_perso(PBOC_AID) == 0x9000
    sws = host.store_data(dgis, pack=True)
    assert len(sws) < len(dgis) and all(sw == 0x9000 for sw in sws)
    host.ok(SELECT_PBOC)
    assert host.ok("00B2011C00") == big
    assert host.card.state.pboc.ac_key == emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)


def test_cvr_counts_scripts_and_pin(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    assert host.send("0020008008241235FFFFFFFFFF")[1] == 0x63C2
    gpo(host, ec=False)
    ac = generate_ac(host, 0x80, cdol1(0))
    assert ac[0x9F10][3:7] == bytes.fromhex("03A61000")  # offline PIN performed, failed; new
    assert online_load(host, 100) == 0x9000
    tc = generate_ac(host, 0x40, b"00" + cdol1(0))
    # one issuer script command processed; byte 3: 80 the ARQC above was left without its second
    # GENERATE AC (online_load starts a new transaction), 10 new card (at its first AC)
    assert tc[0x9F10][3:7] == bytes.fromhex("03609010")


def test_script_replayed_in_a_later_transaction_refused(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    sent: list[bytes] = []
    assert online_load(host, 3000, sent=sent) == 0x9000
    assert online_load(host, 100) == 0x9000  # a new transaction, balance now 1.00
    assert host.send(sent[0])[1] == 0x6988  # the old script's MAC covers the old ATC/ARQC
    assert get_data(host, 0x9F79) == bytes.fromhex("000000000100")


def test_fourth_wrong_pin_blocks_and_the_block_survives_power(tmp_path: Path) -> None:
    """Three wrong PINs count down 2, 1, 0; at 0 tries left VERIFY answers 6983 (authentication
    method blocked) to a wrong PIN, to the right PIN and to a try-counter query alike, and the
    block is in the card image: a power cycle or a reload from disk does not lift it
    (issue 18: no test sent a fourth wrong PBOC PIN)."""
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    wrong, right = "0020008008241235FFFFFFFFFF", "0020008008241234FFFFFFFFFF"
    assert [host.send(wrong)[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert get_data(host, 0x9F17) == b"\x00"
    assert host.send(wrong)[1] == 0x6983
    assert host.send(right)[1] == 0x6983
    assert host.send("0020008000")[1] == 0x6983  # how many tries left: blocked
    assert get_data(host, 0x9F17) == b"\x00"
    # the terminal sees the block in the CVR: byte 3 b7, PIN try limit exceeded
    gpo(host, ec=False)
    ac = generate_ac(host, 0x80, cdol1(0))
    assert ac[0x9F10][3:7] == bytes.fromhex("03A65000")  # 40 PIN try limit, 10 new card
    host.card.power_off()
    again = Host(VirtualCard.load(tmp_path / "card.json"))
    again.ok(SELECT_PBOC)
    assert again.send(right)[1] == 0x6983
    assert get_data(again, 0x9F17) == b"\x00"
