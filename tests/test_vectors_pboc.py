"""The PBOC application-cryptogram input layout on outside vectors (issue 18).

The rule (pboc-conformance.md section 1, source S1 z-zroud/CardPlatform): the ARQC covers
``9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖ 9C ‖ 9F37`` (the CDOL1 data of the reference profile)
``‖ 82 (AIP) ‖ 9F36 (ATC) ‖ CVR``, the CVR being bytes 4-7 of 9F10 *with* its length byte 03;
an IAD without a CVR adds nothing, which is EMV's minimum data set as pyemv's ARQC example
uses it. MAC: ISO/IEC 9797-1 algorithm 3, padding method 2.

* the request the terminal builds from a GENERATE AC answer
  (:meth:`cardperso.bank.host.AuthRequest.from_card`, what the issuer host verifies) is checked
  on pyemv's published ARQC and on the 9F10 of a real PBOC online message published by
  DspreadOrg/qpos (docs/post-transaction.md);
* the virtual card's GENERATE AC is checked against a retail MAC computed by the OpenSSL
  command line over the layout written out field by field here.
"""

from __future__ import annotations

from pathlib import Path

import openssl_cli as ossl
from cardperso.bank.host import AuthRequest
from cardperso.bank.terminal import AcAnswer
from cardperso.crypto import emv
from cardperso.layouts import pboc_ac
from test_card_pboc import SELECT_PBOC, cdol1, generate_ac, gpo, issuer_keys, personalized
from test_card_support import AIP_DEBIT

H = bytes.fromhex

# pyemv pyemv/ac.py docstring of generate_ac: the data is 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37
# then 82 (5800) and 9F36 (0001); ARQC 3B76CF10FECD8789 under the session key AAAA../BBBB..
PYEMV_CDOL = H("000000002000000000000000012400000080000124110309003804823E")
PYEMV_AIP, PYEMV_ATC = H("5800"), H("0001")
PYEMV_SK = H("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
PYEMV_ARQC = H("3B76CF10FECD8789")

# DspreadOrg/qpos docs/post-transaction.md, a decoded PBOC online message: 9F10, 9F36, 82.
QPOS_IAD = H("07010103A02000010A01000000000013F6C042")
QPOS_ATC, QPOS_AIP = H("008D"), H("7C00")


def test_terminal_input_is_the_emv_minimum_set_pyemv() -> None:
    answer = AcAnswer("ARQC", PYEMV_ATC, PYEMV_ARQC, b"", PYEMV_CDOL)
    data = _terminal_request(answer, PYEMV_AIP).data
    assert data == PYEMV_CDOL + PYEMV_AIP + PYEMV_ATC
    assert emv.application_cryptogram(PYEMV_SK, data) == PYEMV_ARQC


def test_terminal_input_appends_the_cvr_of_a_published_pboc_iad() -> None:
    answer = AcAnswer("ARQC", QPOS_ATC, H("059AAE950D0B7A67"), QPOS_IAD, PYEMV_CDOL)
    assert _terminal_request(answer, QPOS_AIP).data == PYEMV_CDOL + H("7C00008D03A02000")


def _terminal_request(answer: AcAnswer, aip: bytes) -> AuthRequest:
    return AuthRequest.from_card(
        "6214830000000019", "01", atc=answer.atc, arqc=answer.ac, iad=answer.iad, aip=aip,
        cdol=MIN_CDOL, cdol_data=answer.cdol_data,
    )  # fmt: skip


# EMV's minimum data set as a CDOL (9F02 9F03 9F1A 95 5F2A 9A 9C 9F37), and one that asks for
# the transaction time and merchant name too
MIN_CDOL = H("9F02069F03069F1A0295055F2A029A039C019F3704")
LONG_CDOL = MIN_CDOL + H("9F21039F4E14")


def test_host_input_on_the_published_pboc_iad_and_pyemv_data() -> None:
    # the shared function (what the card MACs) on pyemv's data and the qpos 9F10: the layout's
    # vector, whatever else the CDOL asked for
    extra = H("101530") + b"MERCHANT".ljust(20, b" ")
    for cdol, data in ((MIN_CDOL, PYEMV_CDOL), (LONG_CDOL, PYEMV_CDOL + extra)):
        req = AuthRequest.from_card(
            "6214830000000019", "01", atc=QPOS_ATC, arqc=bytes(8), iad=QPOS_IAD, aip=QPOS_AIP,
            cdol=cdol, cdol_data=data,
        )  # fmt: skip
        assert req.data == pboc_ac.AC_INPUT.vectors[1][1][:29] + H("7C00008D03A02000")
        assert req.data == pboc_ac.AC_INPUT.encode(pboc_ac.AC_INPUT.vectors[1][0])


def test_pyemv_arqc_through_the_shared_input() -> None:
    # without a PBOC 9F10 there is no CVR: pyemv's published ARQC over its minimum set
    data = pboc_ac.ac_input(b"", {}, PYEMV_CDOL, PYEMV_AIP, PYEMV_ATC)
    assert emv.application_cryptogram(PYEMV_SK, data) == PYEMV_ARQC
    assert data == pboc_ac.AC_INPUT.encode(pboc_ac.AC_INPUT.vectors[0][0])


def _retail_mac_openssl(sk: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with OpenSSL: single-DES CBC under K1 (des-ede with
    K1 = K2), then decrypt under K2 and encrypt under K1; padding method 2."""
    k1, k2 = sk[:8] * 2, sk[8:] * 2
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 8)
    last = ossl.cbc_mac("des-ede-cbc", k1, padded)
    return ossl.enc("des-ede-ecb", k1, ossl.dec("des-ede-ecb", k2, last))


def test_retail_mac_helper_on_pyemv() -> None:
    # the helper itself on the published ARQC, so the card test below stands on a checked MAC
    assert _retail_mac_openssl(PYEMV_SK, PYEMV_CDOL + PYEMV_AIP + PYEMV_ATC) == PYEMV_ARQC


def test_card_arqc_covers_cdol_aip_atc_cvr(tmp_path: Path) -> None:
    host = personalized(tmp_path)
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    data = cdol1(12345)
    ac = generate_ac(host, 0x80, data)
    atc, iad = ac[0x9F36], ac[0x9F10]
    sk_ac, _ = issuer_keys(atc)
    cvr = iad[3:7]
    assert cvr[0] == 0x03
    layout = (
        data[0:6]  # 9F02 amount, authorised
        + data[6:12]  # 9F03 amount, other
        + data[12:14]  # 9F1A terminal country code
        + data[14:19]  # 95 TVR
        + data[19:21]  # 5F2A transaction currency code
        + data[21:24]  # 9A transaction date
        + data[24:25]  # 9C transaction type
        + data[25:29]  # 9F37 unpredictable number
        + AIP_DEBIT  # 82
        + atc  # 9F36
        + cvr  # 9F10 bytes 4-7, with the length byte 03
    )
    assert len(data) == 29
    assert ac[0x9F26] == _retail_mac_openssl(sk_ac, layout)
