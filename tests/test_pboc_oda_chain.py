"""The whole offline-authentication chain as a terminal meets it on the virtual card: CA ->
issuer certificate (90/92/9F32) -> SDA (93) and the ICC certificate (9F46/9F47/9F48) over the
records the AFL marks and the AIP (9F4A) -> the card's own DDA, CDA and fDDA signatures.

The CA, issuer and ICC keys are OpenSSL's, and the CA and issuer sign with OpenSSL's raw
private operation (``openssl pkeyutl``, tests/openssl_rsa.py): the card only stores what an
outside signer produced, and the terminal side (cardperso.layouts.emv_cert, EMV 4.3 Book 2
sections 5-6) recovers the chain from the card's records as read through READ RECORD. The card's
AIP claims SDA, DDA and CDA (``7D00``) and each claim is exercised.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cardperso.bank import qpboc, terminal
from cardperso.card import VirtualCard
from cardperso.chip.pboc_flows import dol_values, internal_authenticate
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.layouts import emv_cert
from cardperso.sim.inprocess import InProcessTransport
from openssl_rsa import OpensslRsa, genrsa, sign_raw
from test_card_support import (
    CDOL1,
    CDOL2,
    IAD,
    PAN,
    PBOC_AID,
    PSN,
    Host,
    install_pboc,
    new_card,
    pboc_dgis,
)
from test_pboc_oda import key_dgis
from test_qpboc import CL_PDOL

H = bytes.fromhex
AIP = H("7D00")  # SDA 40, DDA 20, cardholder verification 10, TRM 08, issuer auth 04, CDA 01
#: SFI 1 rec 1 (57), SFI 2 rec 1 (5A ... : marked for ODA), SFI 3 recs 1-3 (ODA objects)
AFL = H("080101001001010118010300")
TODAY = dt.date(2026, 12, 4)


def n_of(key: OpensslRsa) -> bytes:
    n = key.parts["modulus"]
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpensslRsa]:
    base = tmp_path_factory.mktemp("chain")
    out = {}
    for name, bits in (("ca", 1408), ("issuer", 1152), ("icc", 1024)):
        (base / name).mkdir()
        out[name] = genrsa(base / name, bits, 3)
    return out


def chain_dgis(keys: dict[str, OpensslRsa]) -> list[tuple[int, bytes, bool]]:
    ca, issuer, icc = keys["ca"], keys["issuer"], keys["icc"]
    base = {d: v for d, v, _ in pboc_dgis(balance=5000)}
    rec0201 = tlv.encode(
        0x70,
        tlv.encode(0x5A, H(PAN)) + tlv.encode(0x5F34, H(PSN)) + tlv.encode(0x5F24, H("341231")),
    )
    static = emv_cert.static_data([(2, rec0201)], b"\x82", {0x82: AIP})
    ipk = emv_cert.build_issuer_certificate(
        lambda b: sign_raw(ca, b), len(n_of(ca)), issuer_id=emv_cert.issuer_identifier(PAN[:6]),
        expiry=H("1234"), serial=H("000001"), modulus=n_of(issuer), exponent=3,
    )  # fmt: skip
    icert = emv_cert.build_icc_certificate(
        lambda b: sign_raw(issuer, b), len(n_of(issuer)), pan=H(PAN), expiry=H("1234"),
        serial=H("000002"), modulus=n_of(icc), exponent=3, static=static,
    )  # fmt: skip
    ssad = emv_cert.build_ssad(
        lambda b: sign_raw(issuer, b), len(n_of(issuer)), dac=H("DAC0"), static=static
    )
    rec0301 = tlv.encode(
        0x70,
        tlv.encode(0x8F, b"\x0a") + tlv.encode(0x90, ipk.certificate)
        + tlv.encode(0x92, ipk.remainder) + tlv.encode(0x9F32, ipk.exponent),
    )  # fmt: skip
    rec0302 = tlv.encode(
        0x70,
        tlv.encode(0x9F46, icert.certificate) + tlv.encode(0x9F48, icert.remainder)
        + tlv.encode(0x9F47, icert.exponent) + tlv.encode(0x9F49, H("9F3704"))
        + tlv.encode(0x9F4A, b"\x82"),
    )  # fmt: skip
    rec0303 = tlv.encode(
        0x70, tlv.encode(0x93, ssad) + tlv.encode(0x8C, CDOL1) + tlv.encode(0x8D, CDOL2)
    )
    gpo = tlv.encode(0x82, AIP) + tlv.encode(0x94, AFL)
    fci_cl = tlv.encode(0x50, b"PBOC DEBIT") + tlv.encode(0x9F38, CL_PDOL)
    dgis: dict[int, bytes] = {
        **{d: v for d, v in base.items() if d not in (0x0201, 0x0202, 0x9104, 0x9203)},
        0x9104: gpo, 0x9203: gpo, 0x0201: rec0201, 0x0301: rec0301, 0x0302: rec0302,
        0x0303: rec0303, 0x9103: fci_cl, 0x9207: gpo + tlv.encode(0x9F10, IAD),
    }  # fmt: skip
    out = [(d, v, d in (0x8000, 0x8010)) for d, v in dgis.items()]
    return out + key_dgis(icc)


@pytest.fixture
def card(keys: dict[str, OpensslRsa], tmp_path: Path) -> VirtualCard:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    host.personalize(PBOC_AID, chain_dgis(keys))
    return host.card


def _icc_key(
    ca: OpensslRsa, records: dict[int, bytes], aip: bytes
) -> tuple[emv_cert.PublicKey, bytes]:
    """The terminal's ODA: issuer key from the CA, SDA, ICC key; returns (ICC key, DAC)."""
    objs: dict[int, bytes] = {}
    for rec in records.values():
        objs.update(tlv.to_dict(tlv.parse_one(rec).children))
    assert objs[0x8F] == b"\x0a"
    capk = emv_cert.PublicKey(n_of(ca), 3)
    issuer = emv_cert.recover_issuer_key(
        capk, objs[0x90], objs.get(0x92, b""), objs[0x9F32], pan=objs[0x5A], today=TODAY
    )
    marked = [(key >> 8, records[key]) for key in (0x0201,)]
    static = emv_cert.static_data(marked, objs[0x9F4A], {0x82: aip})
    dac = emv_cert.verify_ssad(issuer, objs[0x93], static)
    icc = emv_cert.recover_icc_key(
        issuer, objs[0x9F46], objs.get(0x9F48, b""), objs[0x9F47], pan=objs[0x5A],
        static=static, today=TODAY,
    )  # fmt: skip
    return icc, dac


def test_sda_dda_and_cda_from_the_ca_key(keys: dict[str, OpensslRsa], card: VirtualCard) -> None:
    t = InProcessTransport(card)
    t.connect()
    term = terminal.TerminalData(amount=100, unpredictable=H("0A0B0C0D"), date=TODAY)

    def flow() -> terminal.Flow[tuple[terminal.CardSession, bytes, bytes, bytes, bytes]]:
        sel = yield from terminal.select()
        session = yield from terminal.gpo_and_records(sel, term)
        sdad = yield from internal_authenticate(H("CAFEBABE"))
        data = term.dol_data(session.cdol1)
        raw = yield bytes((0x80, 0xAE, 0x90, 0x00, len(data))) + data + b"\x00"  # ARQC + CDA
        return session, sdad, term.dol_data(sel.pdol), data, raw[:-2]

    session, sdad, pdol_data, cdol_data, answer = drive(flow(), t.transmit)
    assert session.aip == AIP
    icc, dac = _icc_key(keys["ca"], session.records, session.aip)
    assert dac == H("DAC0") and icc.modulus == n_of(keys["icc"])
    # DDA: the card's signature over the DDOL data verifies under the certified ICC key
    assert emv_cert.verify_sdad(icc, sdad, H("CAFEBABE"))[0] == 8
    with pytest.raises(emv_cert.CertificateError):
        emv_cert.verify_sdad(icc, sdad, H("CAFEBABF"))
    # CDA: the ARQC travels inside 9F4B, bound to the PDOL and CDOL data and the answer
    objs = tlv.to_dict(tlv.parse_one(answer).children)
    assert 0x9F26 not in objs
    got = emv_cert.verify_cda(
        icc, objs[0x9F4B], un=H("0A0B0C0D"), cid=0x80, pdol_data=pdol_data, cdol_data=cdol_data,
        response=tlv.parse_one(answer).value,
    )  # fmt: skip
    assert len(got.ac) == 8
    with pytest.raises(emv_cert.CertificateError, match="transaction"):
        emv_cert.verify_cda(
            icc, objs[0x9F4B], un=H("0A0B0C0D"), cid=0x80, pdol_data=pdol_data,
            cdol_data=cdol_data[:-1] + b"\x00", response=tlv.parse_one(answer).value,
        )  # fmt: skip


def test_fdda_from_the_ca_key(keys: dict[str, OpensslRsa], card: VirtualCard) -> None:
    card.contactless = True
    t = InProcessTransport(card)
    t.connect()
    got = drive(qpboc.qpboc_purchase(600), t.transmit)
    assert got.cid == "TC" and got.answer[0x82] == AIP
    icc, _ = _icc_key(keys["ca"], got.records, got.answer[0x82])
    v = dol_values(CL_PDOL, got.pdol_data)
    data = emv_cert.fdda_terminal_data(v[0x9F37], v[0x9F02], v[0x5F2A], got.answer[0x9F69])
    assert emv_cert.verify_sdad(icc, got.answer[0x9F4B], data) == b"\x02" + got.answer[0x9F36]
