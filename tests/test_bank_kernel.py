"""`bank verify` as a terminal kernel (bank/kernel.py) against the virtual PBOC card.

The card is personalized by this file with an ODA chain made from known keys: the sample
store's test CA (oda-ca-A000000333-F1) and issuer key, an ICC key from ``rsa_generate``, the
certificates built by layouts/emv_cert (checked against a real card's certificates and the
openssl CLI in tests/test_emv_cert.py). The card's DDA/CDA signatures are the card's own
(card/pboc_oda.py, checked against OpenSSL in tests/test_pboc_oda.py). Each negative case
breaks one thing and the report must name that step and only what follows from it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cardperso.bank.host import IssuerHost
from cardperso.bank.kernel import KernelReport, TerminalCaps, load_capks, verify_kernel
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.crypto.primitives import pad_method2
from cardperso.crypto.rsa import RsaKey, rsa_generate
from cardperso.errors import DataError
from cardperso.keystore import oda
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import emv_cert as ec
from test_bank_host import store as host_store
from test_card_support import PAN, PBOC_AID, Host, install_pboc, new_card, pboc_dgis

H = bytes.fromhex
SAMPLE = Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json"
TODAY = dt.date(2026, 12, 1)
# SFI 1 rec 1 (1 for ODA), SFI 2 recs 1-2 (rec 1 for ODA), SFI 2 recs 3-4 (certificates)
AFL = H("080101011001020110030400")


@pytest.fixture(scope="module")
def chain() -> SoftwareKeyStore:
    return SoftwareKeyStore.load(SAMPLE)


@pytest.fixture(scope="module")
def icc_key() -> RsaKey:
    return rsa_generate(1024)


def capk_text(store: SoftwareKeyStore) -> str:
    return json.dumps([c.to_json() for c in oda.capks(store)])


def oda_dgis(
    store: SoftwareKeyStore, icc: RsaKey, *, aip: bytes, tag_list: bytes = b"\x82",
    cert_aip: bytes | None = None, with_93: bool = True, with_key: bool = True,
) -> list[tuple[int, bytes, bool]]:  # fmt: skip
    """The PBOC test DGIs with the AFL above, the issuer and ICC certificates, 93 and the ICC
    private key DGIs 8201-8205."""
    base = {dgi: (data, enc) for dgi, data, enc in pboc_dgis(balance=5000)}
    gpo = tlv.encode(0x82, aip) + tlv.encode(0x94, AFL)
    base[0x9104] = (gpo, False)
    base[0x9203] = (gpo, False)
    records = [(1, base[0x0101][0]), (2, base[0x0201][0])]
    static = ec.static_data(records, tag_list, {0x82: cert_aip or aip})
    parts = oda.issuer_certificate(store, oda.IssuerCertSpec(issuer_id=PAN[:6]))
    issuer_sign, (issuer_n, _) = store.rsa_signer("oda-issuer"), store.rsa_public_key("oda-issuer")
    icc_parts = ec.build_icc_certificate(
        issuer_sign, len(issuer_n), pan=H(PAN), expiry=H("1230"), serial=H("000009"),
        modulus=icc.modulus, exponent=3, static=static,
    )  # fmt: skip
    rec3 = tlv.encode(0x8F, b"\xf1") + tlv.encode(0x90, parts.certificate)
    rec3 += tlv.encode(0x92, parts.remainder) if parts.remainder else b""
    rec3 += tlv.encode(0x9F32, parts.exponent)
    if with_93:
        rec3 += tlv.encode(0x93, ec.build_ssad(issuer_sign, len(issuer_n), dac=H("DAC1"),
                                               static=static))  # fmt: skip
    rec4 = tlv.encode(0x9F46, icc_parts.certificate) + tlv.encode(0x9F47, b"\x03")
    rec4 += tlv.encode(0x9F48, icc_parts.remainder) if icc_parts.remainder else b""
    rec4 += tlv.encode(0x9F49, H("9F3704"))
    rec4 += tlv.encode(0x9F4A, tag_list) if tag_list else b""
    base[0x0203] = (tlv.encode(0x70, rec3), False)
    base[0x0204] = (tlv.encode(0x70, rec4), False)
    dgis = [(dgi, data, enc) for dgi, (data, enc) in base.items()]
    if with_key:
        half = len(icc.modulus) // 2
        dgis += [(0x8201 + i, pad_method2(getattr(icc, part)[-half:], 8), True)
                 for i, part in enumerate(("qinv", "dq", "dp", "q", "p"))]  # fmt: skip
    return dgis


def run(tmp_path: Path, dgis: list[tuple[int, bytes, bool]], capks: str,
        host: IssuerHost | None = None, caps: TerminalCaps | None = None) -> KernelReport:  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    card = Host(new_card(tmp_path))
    card.authenticate(0x03)
    install_pboc(card)
    card.personalize(PBOC_AID, dgis)
    flow = verify_kernel(load_capks(capks), host or IssuerHost(host_store()), caps=caps,
                         today=TODAY)  # fmt: skip
    return drive(flow, card.transport.transmit)


def steps(report: KernelReport) -> dict[str, bool]:
    return {s.name: s.ok for s in report.steps}


def failed(report: KernelReport) -> list[str]:
    return [s.name for s in report.steps if not s.ok]


def test_sda_dda_card_passes_every_step(tmp_path: Path, chain: SoftwareKeyStore,
                                        icc_key: RsaKey) -> None:  # fmt: skip
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7C00")), capk_text(chain))
    assert [s.name for s in report.steps] == [
        "select", "records", "aip", "ca public key", "issuer certificate", "static data",
        "sda", "icc certificate", "dda", "9f10", "arqc", "issuer authentication",
        "second generate ac", "crm get data",
    ]  # fmt: skip
    lines = [s.line() for s in report.steps]
    assert "ok aip: 7C00: the card claims SDA, DDA" in lines
    assert "ok static data: 2 records + AIP (9F4A), " in "\n".join(lines)
    assert any(line.startswith("ok sda: 93 verified, DAC dac1") for line in lines)
    # CRM: the test card of test_card_support has only the e-cash objects: named, not hidden
    assert failed(report) in ([], ["crm get data"]), lines
    assert PAN not in "\n".join(lines) and report.pan_masked != PAN


def test_cda_card(tmp_path: Path, chain: SoftwareKeyStore, icc_key: RsaKey) -> None:
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7D00")), capk_text(chain))
    got = steps(report)
    assert got["cda"] and got["dda"] and got["arqc"] and got["second generate ac"]
    assert "the card claims SDA, DDA, CDA" in report.steps[2].detail
    # a terminal without CDA asks for a plain ARQC
    plain = run(tmp_path / "b", oda_dgis(chain, icc_key, aip=H("7D00")), capk_text(chain),
                caps=TerminalCaps(cda=False))  # fmt: skip
    assert "cda" not in steps(plain) and steps(plain)["arqc"]


def test_wrong_capk_fails_the_issuer_certificate(tmp_path: Path, chain: SoftwareKeyStore,
                                                 icc_key: RsaKey) -> None:  # fmt: skip
    other = [{**c.to_json(), "modulus": rsa_generate(1408).modulus.hex()}
             for c in oda.capks(chain)]  # fmt: skip
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7C00")), json.dumps(other))
    assert failed(report)[:1] == ["issuer certificate"]
    assert "sda" not in steps(report) and steps(report)["arqc"]  # online still checked
    missing = run(tmp_path / "b", oda_dgis(chain, icc_key, aip=H("7C00")), "[]")
    assert failed(missing)[:1] == ["ca public key"]


def test_aip_not_covered_fails_the_icc_certificate(tmp_path: Path, chain: SoftwareKeyStore,
                                                   icc_key: RsaKey) -> None:  # fmt: skip
    # certificates signed over AIP 7C00 on a card whose GPO says 7D00: the ICC certificate's
    # and 93's hashes cover the AIP (9F4A = 82), so both must fail, and DDA cannot run
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7D00"), cert_aip=H("7C00")),
                 capk_text(chain))  # fmt: skip
    by_name = {s.name: s for s in report.steps}
    assert not by_name["sda"].ok and "hash check failed" in by_name["sda"].detail
    assert not by_name["icc certificate"].ok and "hash" in by_name["icc certificate"].detail
    assert "dda" not in by_name and by_name["arqc"].ok


def test_claims_without_data_fail(tmp_path: Path, chain: SoftwareKeyStore,
                                  icc_key: RsaKey) -> None:  # fmt: skip
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7C00"), with_93=False,
                                    with_key=False), capk_text(chain))  # fmt: skip
    by_name = {s.name: s for s in report.steps}
    assert not by_name["sda"].ok and "no 93" in by_name["sda"].detail
    assert not by_name["dda"].ok and "6985" in by_name["dda"].detail  # no ICC private key


def test_wrong_issuer_master_key_fails_the_arqc(tmp_path: Path, chain: SoftwareKeyStore,
                                                icc_key: RsaKey) -> None:  # fmt: skip
    from test_card_support import IMK_SMC

    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7C00")), capk_text(chain),
                 host=IssuerHost(host_store(ac=IMK_SMC)))  # fmt: skip
    by_name = {s.name: s for s in report.steps}
    assert not by_name["arqc"].ok and "issuer host refused" in by_name["arqc"].detail
    assert by_name["dda"].ok and "issuer authentication" not in by_name


def test_capk_file_refusals() -> None:
    with pytest.raises(DataError, match="not JSON"):
        load_capks("{")
    with pytest.raises(DataError, match="entry 1, field 'index'"):
        load_capks(json.dumps([{"rid": "A000000333", "index": "F", "modulus": "00",
                                "exponent": "03"}]))  # fmt: skip
    with pytest.raises(DataError, match="a JSON list"):
        load_capks("{}")


# -- contactless: fDDA of a qPBOC offline approval ----------------------------------------------


def qpboc_card(tmp_path: Path, chain: SoftwareKeyStore, icc: RsaKey, afl: bytes = AFL) -> Host:
    """The chain above on a card with the qPBOC path (tests/test_qpboc.py's DGIs), its 9207
    GPO answer naming the same AIP and ODA records as the contact one: one ICC certificate
    serves both."""
    from test_card_support import IAD
    from test_qpboc import qpboc_dgis

    dgis = {d: (v, e) for d, v, e in oda_dgis(chain, icc, aip=H("7C00"))}
    for d, v, e in qpboc_dgis(5000):
        if d in (0x9103, 0x0E01):
            dgis[d] = (v, e)
    dgis[0x9207] = (tlv.encode(0x82, H("7C00")) + tlv.encode(0x94, afl) + tlv.encode(0x9F10, IAD),
                    False)  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    card = Host(new_card(tmp_path))
    card.authenticate(0x03)
    install_pboc(card)
    card.personalize(PBOC_AID, [(d, v, e) for d, (v, e) in dgis.items()])
    card.card.contactless = True
    return card


def test_fdda_of_a_qpboc_offline_purchase(tmp_path: Path, chain: SoftwareKeyStore,
                                          icc_key: RsaKey) -> None:  # fmt: skip
    import dataclasses

    from cardperso.bank import qpboc
    from cardperso.bank.kernel import check_fdda

    card = qpboc_card(tmp_path, chain, icc_key)
    result = drive(qpboc.qpboc_purchase(800), card.transport.transmit)
    assert result.outcome == "approved offline" and 0x9F4B in result.answer
    capks = load_capks(capk_text(chain))
    steps_ = check_fdda(capks, result, today=TODAY)
    assert [s.name for s in steps_] == [
        "aip", "ca public key", "issuer certificate", "static data", "icc certificate", "fdda",
    ]  # fmt: skip
    assert all(s.ok for s in steps_), [s.line() for s in steps_]
    # a 9F69 other than the one signed (the card's unpredictable number, CTQ) fails the hash
    card_auth = result.answer[0x9F69]
    forged = {**result.answer, 0x9F69: card_auth[:-1] + bytes([card_auth[-1] ^ 1])}
    bad = check_fdda(capks, dataclasses.replace(result, answer=forged), today=TODAY)
    assert [s.name for s in bad if not s.ok] == ["fdda"] and "hash" in bad[-1].detail
    # another amount than the one signed: same
    other = dataclasses.replace(result, pdol_data=result.pdol_data.replace(
        bytes.fromhex("000000000800"), bytes.fromhex("000000000080")))  # fmt: skip
    assert not check_fdda(capks, other, today=TODAY)[-1].ok
    # an online purchase has no fDDA to check
    online = dataclasses.replace(result, cid="ARQC")
    assert check_fdda(capks, online, today=TODAY)[-1].detail.startswith("the card answered ARQC")


def test_fdda_of_a_key_above_1024_bits_from_the_virtual_record(
    tmp_path: Path, chain: SoftwareKeyStore
) -> None:
    # a 1152-bit ICC key signs 144 bytes: the card puts 70 { 9F4B, 9F69 } in the virtual record
    # SFI 6 record 1, which the qPBOC AFL names (not for ODA)
    from cardperso.bank import qpboc
    from cardperso.bank.kernel import check_fdda

    card = qpboc_card(tmp_path, chain, rsa_generate(1152), afl=AFL + H("30010100"))
    result = drive(qpboc.qpboc_purchase(800), card.transport.transmit)
    assert result.outcome == "approved offline" and 0x9F4B not in result.answer
    got = check_fdda(load_capks(capk_text(chain)), result, today=TODAY)
    assert all(s.ok for s in got), [s.line() for s in got]
    assert got[-1].detail.startswith("9F4B (record) verified over 9F37, 9F02, 5F2A and 9F69")


def test_a_card_without_a_cda_signature(tmp_path: Path, chain: SoftwareKeyStore,
                                              icc_key: RsaKey) -> None:  # fmt: skip
    # the AIP claims CDA but the card has no ICC private key: it answers GENERATE AC with P1 b5
    # without a signature; the kernel says CDA failed and still sends the clear AC online
    report = run(tmp_path, oda_dgis(chain, icc_key, aip=H("7D00"), with_key=False),
                 capk_text(chain))  # fmt: skip
    by_name = {s.name: s for s in report.steps}
    assert not by_name["cda"].ok and "no 9F27 or 9F4B" in by_name["cda"].detail
    assert not by_name["dda"].ok and by_name["arqc"].ok and "crm get data" in by_name
