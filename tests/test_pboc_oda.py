"""DDA, CDA and fDDA by the virtual PBOC card (issue 13 item 3), checked from the outside.

* The ICC key is OpenSSL's (``openssl genpkey``), loaded into DGIs 8201-8205 the way
  pboc-conformance.md section 4 lays them out (q⁻¹ mod p, d mod (q−1), d mod (p−1), q, p;
  80-padded, encrypted under the session DEK).
* Every signature the card makes is opened with OpenSSL's raw public operation (``openssl
  pkeyutl -encrypt -pubin`` unpadded, tests/openssl_rsa.py) and checked against the format
  rules of EMV 4.3 Book 2 by hand: table 17 (format 05: 6A 05 01 Ldd ICC-dynamic-data BB...
  SHA-1 BC; the hash over the block's fields and the terminal's data, computed by ``openssl
  dgst -sha1``), 6.6 / table 19 for CDA (ICC dynamic data Ldn IDN CID AC transaction-data-hash,
  the hash over PDOL data ‖ CDOL data ‖ the answer's objects but 9F4B), and JR/T 0025.12 annex
  B for fDDA 01 (hash over 9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69, as S3's qPBOC kernel checks it).
* The terminal kernel's recovery (cardperso.layouts.emv_cert) must agree with OpenSSL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.bank import qpboc, terminal
from cardperso.card import VirtualCard
from cardperso.chip.pboc_flows import dol_values
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.crypto.primitives import pad_method2
from cardperso.layouts import emv_cert, pboc_ac
from openssl_rsa import OpensslRsa, genrsa, public_pem, recover_with, sha1
from test_card_pboc import SELECT_PBOC, cdol1, gpo, issuer_keys
from test_card_support import AIP_DEBIT, IAD, PBOC_AID, Host, install_pboc, new_card, pboc_dgis
from test_qpboc import CL_PDOL, qpboc_dgis, run

H = bytes.fromhex
UN = H("11223344")


@pytest.fixture(scope="module")
def icc_key(tmp_path_factory: pytest.TempPathFactory) -> OpensslRsa:
    return genrsa(tmp_path_factory.mktemp("icc"), 1024, 3)


def key_dgis(key: OpensslRsa, *, encrypted: bool = True) -> list[tuple[int, bytes, bool]]:
    half = (key.parts["modulus"].bit_length() + 15) // 16
    names = ("coefficient", "exponent2", "exponent1", "prime2", "prime1")  # 8201-8205
    return [
        (0x8201 + i, pad_method2(key.part(name, half), 8), encrypted)
        for i, name in enumerate(names)
    ]


def oda_record() -> tuple[int, bytes, bool]:
    return (
        0x0203,
        tlv.encode(0x70, tlv.encode(0x9F47, b"\x03") + tlv.encode(0x9F49, H("9F3704"))),
        False,
    )


def card(
    tmp_path: Path, key: OpensslRsa | None, base: list[tuple[int, bytes, bool]] | None = None
) -> Host:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    dgis = [*(base or pboc_dgis(balance=5000)), oda_record()]
    if key is not None:
        dgis += key_dgis(key)
    host.personalize(PBOC_AID, dgis)
    return host


def modulus(key: OpensslRsa) -> bytes:
    n = key.parts["modulus"]
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def opened(key: OpensslRsa, signature: bytes, tmp_path: Path) -> bytes:
    """The block under ``signature``, by OpenSSL's public operation with (n, e) only."""
    assert len(signature) == len(modulus(key))
    return recover_with(public_pem(modulus(key), 3, tmp_path), signature)


def check_format_05(block: bytes, terminal_data: bytes) -> bytes:
    """EMV Book 2 table 17 by hand; returns the ICC dynamic data."""
    assert block[:3] == H("6A0501") and block[-1] == 0xBC
    ldd = block[3]
    dynamic, pad = block[4 : 4 + ldd], block[4 + ldd : -21]
    assert pad == b"\xbb" * (len(block) - ldd - 25)
    assert block[-21:-1] == sha1(block[1:-21] + terminal_data)
    return dynamic


def test_dda_internal_authenticate_opens_with_openssl(icc_key: OpensslRsa, tmp_path: Path) -> None:
    host = card(tmp_path, icc_key)
    host.ok(SELECT_PBOC)
    answers = []
    for _ in range(2):
        raw = host.ok(b"\x00\x88\x00\x00\x04" + UN + b"\x00")
        sdad = tlv.to_dict(tlv.parse_one(raw).children)[0x9F4B]
        dynamic = check_format_05(opened(icc_key, sdad, tmp_path), UN)
        assert dynamic[0] == 8 and len(dynamic) == 9  # Ldn 08, an 8-byte ICC dynamic number
        answers.append(dynamic)
        # the kernel's recovery agrees
        pk = emv_cert.PublicKey(modulus(icc_key), 3)
        assert emv_cert.verify_sdad(pk, sdad, UN) == dynamic
        with pytest.raises(emv_cert.CertificateError):
            emv_cert.verify_sdad(pk, sdad, H("11223345"))
    assert answers[0] != answers[1]  # a fresh dynamic number each time


def test_cda_on_generate_ac(icc_key: OpensslRsa, tmp_path: Path) -> None:
    host = card(tmp_path, icc_key)
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    pdol_data = b"\x00" + bytes(6) + H("0156")  # gpo(): 9F7A 00, amount 0, currency 0156
    data = cdol1(2500, UN)
    raw = host.ok(b"\x80\xae\x90\x00" + bytes((len(data),)) + data + b"\x00")  # ARQC + CDA
    answer = tlv.parse(tlv.parse_one(raw).value)
    assert [t.tag for t in answer] == [0x9F27, 0x9F36, 0x9F4B, 0x9F10]  # no AC in clear
    objs = {t.tag: t.value for t in answer}
    dynamic = check_format_05(opened(icc_key, objs[0x9F4B], tmp_path), UN)
    n = dynamic[0]
    cid, ac, digest = dynamic[1 + n], dynamic[2 + n : 10 + n], dynamic[10 + n :]
    assert cid == 0x80 and len(digest) == 20
    others = b"".join(t.to_bytes() for t in answer if t.tag != 0x9F4B)
    assert digest == sha1(pdol_data + data + others)
    # the signed AC is the ARQC the issuer verifies (PBOC session key, minimum data set)
    sk_ac, _ = issuer_keys(objs[0x9F36])
    iad = objs[0x9F10]
    emv.verify_application_cryptogram(sk_ac, data + AIP_DEBIT + objs[0x9F36] + iad[3:7], ac)
    pk = emv_cert.PublicKey(modulus(icc_key), 3)
    got = emv_cert.verify_cda(
        pk, objs[0x9F4B], un=UN, cid=0x80, pdol_data=pdol_data, cdol_data=data,
        response=tlv.parse_one(raw).value,
    )  # fmt: skip
    assert got.ac == ac
    # the second GENERATE AC: an AAC carries its AC in clear, no signature
    raw = host.ok(b"\x80\xae\x10\x00" + bytes((len(data) + 2,)) + b"Z3" + data + b"\x00")
    second = tlv.to_dict(tlv.parse_one(raw).children)
    assert second[0x9F27] == b"\x00" and 0x9F26 in second and 0x9F4B not in second


def test_fdda_in_the_qpboc_offline_answer(icc_key: OpensslRsa, tmp_path: Path) -> None:
    host = card(tmp_path, icc_key, qpboc_dgis(5000))
    host.card.contactless = True
    got = run(host.card, qpboc.qpboc_purchase(700))
    assert got.cid == "TC"
    card_auth = got.answer[0x9F69]
    assert card_auth[:1] == b"\x01" and card_auth[5:] == got.answer[0x9F6C]  # 01 UN(4) CTQ
    v = dol_values(CL_PDOL, got.pdol_data)
    terminal_data = v[0x9F37] + v[0x9F02] + v[0x5F2A] + card_auth
    dynamic = check_format_05(opened(icc_key, got.answer[0x9F4B], tmp_path), terminal_data)
    assert dynamic == b"\x02" + got.answer[0x9F36]  # ICC dynamic number: the ATC
    pk = emv_cert.PublicKey(modulus(icc_key), 3)
    fdda = emv_cert.fdda_terminal_data(v[0x9F37], v[0x9F02], v[0x5F2A], card_auth)
    assert emv_cert.verify_sdad(pk, got.answer[0x9F4B], fdda) == dynamic
    # the ARQC path signs nothing
    assert pboc_ac.IAD.decode(got.answer[0x9F10]).cvr[:1] == H("90")


def test_fdda_of_a_key_above_128_bytes_is_in_the_virtual_record(tmp_path: Path) -> None:
    """An ICC key above 1024 bits: 9F4B does not fit the GPO answer; the card puts 70 { 9F4B,
    9F69 } in the virtual record SFI 6 record 1 that the qPBOC AFL names (S3), for READ
    RECORD in this transaction only."""
    big = genrsa(tmp_path, 1152, 3)
    dgis = [
        (d, tlv.encode(0x82, H("0000")) + tlv.encode(0x94, H("0801010030010100"))
         + tlv.encode(0x9F10, IAD), e) if d == 0x9207 else (d, v, e)
        for d, v, e in qpboc_dgis(5000)
    ]  # fmt: skip
    host = card(tmp_path, big, dgis)
    host.card.contactless = True
    got = run(host.card, qpboc.qpboc_purchase(700))
    assert got.cid == "TC" and 0x9F4B not in got.answer and 0x9F69 not in got.answer
    record = tlv.to_dict(tlv.parse_one(got.records[6 << 8 | 1]).children)
    v = dol_values(CL_PDOL, got.pdol_data)
    data = v[0x9F37] + v[0x9F02] + v[0x5F2A] + record[0x9F69]
    assert len(record[0x9F4B]) == 144
    check_format_05(opened(big, record[0x9F4B], tmp_path), data)
    # gone with the transaction; DDA still works with the key
    host.ok(SELECT_PBOC)
    assert host.send("00B2013400")[1] == 0x6A83
    raw = host.ok(b"\x00\x88\x00\x00\x04" + UN + b"\x00")
    sdad = tlv.to_dict(tlv.parse_one(raw).children)[0x9F4B]
    check_format_05(opened(big, sdad, tmp_path), UN)


def test_a_card_without_a_key_refuses_internal_authenticate(tmp_path: Path) -> None:
    host = card(tmp_path, None)
    host.ok(SELECT_PBOC)
    assert host.send(b"\x00\x88\x00\x00\x04" + UN + b"\x00")[1] == 0x6985
    gpo(host, ec=False)
    data = cdol1(1, UN)
    raw = host.ok(b"\x80\xae\x90\x00" + bytes((len(data),)) + data + b"\x00")
    assert 0x9F26 in tlv.to_dict(tlv.parse_one(raw).children)  # CDA asked, none possible


def test_key_dgis_refused_in_clear_unpadded_or_mismatched(
    icc_key: OpensslRsa, tmp_path: Path
) -> None:
    for n, bad in enumerate(
        [
            key_dgis(icc_key, encrypted=False),  # a private key never in clear
            [(d, v.rstrip(b"\0")[:-1].ljust(len(v), b"\x01"), e) for d, v, e in key_dgis(icc_key)],
            key_dgis(icc_key)[:4],  # p missing
        ]
    ):
        (tmp_path / str(n)).mkdir()
        host = Host(new_card(tmp_path / str(n)))
        host.authenticate(0x03)
        install_pboc(host)
        assert host.install_for_perso(PBOC_AID) == 0x9000
        sws = host.store_data([*pboc_dgis(), oda_record(), *bad])
        assert 0x6A80 in sws, n
    # parts of two different keys: the five do not make one key
    other = genrsa(tmp_path, 1024, 3)
    mixed = key_dgis(icc_key)[:4] + key_dgis(other)[4:]
    (tmp_path / "mixed").mkdir()
    host = Host(new_card(tmp_path / "mixed"))
    host.authenticate(0x03)
    install_pboc(host)
    assert host.install_for_perso(PBOC_AID) == 0x9000
    assert host.store_data([*pboc_dgis(), oda_record(), *mixed])[-1] == 0x6A80
    assert VirtualCard.load(host.card.path).state.apps[PBOC_AID.hex().upper()].lifecycle != (
        "PERSONALIZED"
    )


def test_cda_on_the_second_generate_ac_binds_cdol2(icc_key: OpensslRsa, tmp_path: Path) -> None:
    host = card(tmp_path, icc_key)
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    pdol_data = b"\x00" + bytes(6) + H("0156")
    data1 = cdol1(2500, UN)
    first = tlv.to_dict(
        tlv.parse_one(
            host.ok(b"\x80\xae\x80\x00" + bytes((len(data1),)) + data1 + b"\x00")
        ).children
    )
    sk_ac, _ = issuer_keys(first[0x9F36])
    arpc = emv.arpc_method1(sk_ac, first[0x9F26], b"00")
    assert host.send(b"\x00\x82\x00\x00\x0a" + arpc + b"00")[1] == 0x9000
    un2 = H("55667788")
    data2 = b"00" + cdol1(2500, un2)
    raw = host.ok(b"\x80\xae\x50\x00" + bytes((len(data2),)) + data2 + b"\x00")  # TC + CDA
    objs = tlv.to_dict(tlv.parse_one(raw).children)
    assert objs[0x9F27] == b"\x40" and 0x9F26 not in objs
    dynamic = check_format_05(opened(icc_key, objs[0x9F4B], tmp_path), un2)
    n = dynamic[0]
    others = b"".join(t.to_bytes() for t in tlv.parse(tlv.parse_one(raw).value) if t.tag != 0x9F4B)
    assert dynamic[1 + n] == 0x40
    assert dynamic[10 + n :] == sha1(pdol_data + data1 + data2 + others)  # CDOL1 ‖ CDOL2 data


def test_fdda_00_for_a_reader_without_fdda_01(icc_key: OpensslRsa, tmp_path: Path) -> None:
    """TTQ B4 b8 clear: fDDA version 00, the signature over 9F37 alone and no 9F69 (the form S3's
    qPBOC kernel verifies when the card sends no 9F69)."""
    host = card(tmp_path, icc_key, qpboc_dgis(5000))
    host.card.contactless = True
    term = terminal.TerminalData(amount=700, ttq=bytes.fromhex("2A000000"))
    got = run(host.card, qpboc.qpboc_purchase(700, term=term))
    assert got.cid == "TC" and 0x9F69 not in got.answer
    un = dol_values(CL_PDOL, got.pdol_data)[0x9F37]
    dynamic = check_format_05(opened(icc_key, got.answer[0x9F4B], tmp_path), un)
    assert dynamic == b"\x02" + got.answer[0x9F36]
