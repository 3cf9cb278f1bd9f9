"""PBOC 3.0 conformance of the virtual card and the issuer host (issue 13 items 3 and 4).

* 9F10 in PBOC's layout: 07 DKI CVN CVR(03+3) algorithm, then 0A 01 EC balance (5) MAC (4);
  the balance MAC is checked here with a retail MAC computed by the OpenSSL command line;
* the AC covers the minimum data set ‖ AIP ‖ ATC ‖ CVR even when the CDOL asks for more, and the
  issuer host verifies it through the same input function (:meth:`AuthRequest.from_card`);
* a CVN other than PBOC's keeps the EMV common session key over the whole CDOL data;
* card risk-management data answer GET DATA; the transaction log is readable by READ RECORD;
* an e-cash load starts from the balance the card authenticated, not from the terminal's 9F79.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.bank import terminal
from cardperso.bank.host import AuthRequest, HostKeys, IssuerHost, LoadRefused
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.errors import CardError, CryptogramMismatch, DataError, MacMismatch
from cardperso.layouts import pboc_ac
from test_bank_host import store
from test_card_pboc import SELECT_PBOC, cdol1, generate_ac, get_data, gpo
from test_card_support import (
    AIP_DEBIT,
    CDOL1,
    CDOL2,
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
from test_vectors_pboc import _retail_mac_openssl

H = bytes.fromhex

# CDOL1 of a card that also wants the transaction time and merchant name (9F21, 9F4E)
LONG_CDOL1 = CDOL1 + H("9F21039F4E14")
LOG_FORMAT = H("9A039F21039F02069F03069F1A025F2A029F4E149C019F3602")  # XML2Java's 9F4F
CRM = {
    0x9F52: H("6010"),
    0x9F56: H("80"),
    0x9F57: H("0156"),
    0x9F58: H("03"),
    0x9F59: H("05"),
    0x9F53: H("00"),
    0x9F54: H("000000050000"),
    0x9F5C: H("000000100000"),
    0x9F4F: LOG_FORMAT,
}


def _replace(
    dgis: list[tuple[int, bytes, bool]], dgi: int, value: bytes
) -> list[tuple[int, bytes, bool]]:
    return [(d, value if d == dgi else v, e) for d, v, e in dgis]


def card(
    tmp_path: Path,
    *,
    balance: int = 0,
    iad: bytes = IAD,
    cdol: bytes = CDOL1,
    crm: bool = True,
) -> Host:
    """A personalized card; ``crm`` adds DGI 0E01 and the FCI's log entry 9F4D 0B 0A."""
    dgis = pboc_dgis(balance=balance)
    fci = dict((d, v) for d, v, _ in dgis)[0x9102]
    if crm:
        fci += tlv.encode(0xBF0C, tlv.encode(0x9F4D, H("0B0A")))
        dgis = _replace(dgis, 0x9102, fci)
        e01 = b"".join(tlv.encode(t, v) for t, v in CRM.items())
        dgis.append((0x0E01, e01, False))
    rec = tlv.encode(
        0x70,
        tlv.encode(0x5A, H(PAN))
        + tlv.encode(0x5F34, H(PSN))
        + tlv.encode(0x8C, cdol)
        + tlv.encode(0x8D, CDOL2),
    )
    dgis = _replace(_replace(dgis, 0x0201, rec), 0x9200, iad)
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    host.personalize(PBOC_AID, dgis)
    return host


def mk(imk: bytes) -> bytes:
    return emv.derive_icc_master_key_a(imk, PAN, PSN)


def arqc(host: Host, data: bytes) -> dict[int, bytes]:
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    ac = generate_ac(host, 0x80, data)
    assert ac[0x9F27] == b"\x80"
    return ac


def request(ac: dict[int, bytes], cdol: bytes, data: bytes) -> AuthRequest:
    return AuthRequest.from_card(
        PAN,
        PSN,
        atc=ac[0x9F36],
        arqc=ac[0x9F26],
        iad=ac[0x9F10],
        aip=AIP_DEBIT,
        cdol=cdol,
        cdol_data=data,
    )


# -- 9F10 -----------------------------------------------------------------------------------------


def test_9f10_is_pboc_layout_with_the_balance_and_its_mac(tmp_path: Path) -> None:
    host = card(tmp_path, balance=1234)
    ac = arqc(host, cdol1(100))
    iad, atc = ac[0x9F10], ac[0x9F36]
    assert len(iad) == 19
    parsed = pboc_ac.IAD.decode(iad)
    assert (parsed.dki, parsed.cvn, parsed.cvr, parsed.algorithm) == (1, 1, H("A01000"), 1)
    idd = pboc_ac.EC_IDD.decode(parsed.idd or b"")
    assert idd.balance == 1234 and iad[10:15] == H("0000001234")
    # the MAC: retail MAC (OpenSSL) under the SMI session key, PBOC's (00x6 ATC / ATC xor FFFF)
    sk_smi = emv.session_key_pboc(mk(IMK_SMI), atc)
    assert idd.mac == _retail_mac_openssl(sk_smi, atc + H("0000001234") + b"\x00")[:4]
    assert IssuerHost(store()).card_balance(request(ac, CDOL1, cdol1(100))) == 1234


def test_a_9f10_whose_length_byte_promises_missing_bytes_is_refused(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    assert host.install_for_perso(PBOC_AID) == 0x9000
    # the old value: 0A promises 10 issuer-discretionary bytes where 6 follow
    bad = _replace(pboc_dgis(), 0x9200, H("07010103A00000010A010000000000"))
    sws = host.store_data(bad)
    assert 0x6A80 in sws


# -- the cryptogram input -------------------------------------------------------------------------


def test_ac_covers_the_minimum_set_when_the_cdol_asks_for_more(tmp_path: Path) -> None:
    host = card(tmp_path, cdol=LONG_CDOL1)
    data = cdol1(500) + H("101530") + b"cardperso bank".ljust(20, b" ")
    ac = arqc(host, data)
    atc, cvr = ac[0x9F36], ac[0x9F10][3:7]
    sk = emv.session_key_pboc(mk(IMK_AC), atc)
    assert ac[0x9F26] == _retail_mac_openssl(sk, data[:29] + AIP_DEBIT + atc + cvr)
    req = request(ac, LONG_CDOL1, data)
    assert req.data == data[:29] + AIP_DEBIT + atc + cvr
    IssuerHost(store()).verify(req)
    # the whole CDOL data (cardperso's earlier input) does not verify
    whole = AuthRequest(PAN, PSN, atc, ac[0x9F26], data + AIP_DEBIT + atc + cvr, ac[0x9F10])
    with pytest.raises(CryptogramMismatch):
        IssuerHost(store()).verify(whole)


def test_another_cvn_keeps_the_emv_common_session_key(tmp_path: Path) -> None:
    iad = H("07010A03A00000010A01000000000000000000")  # CVN 0A: not PBOC's
    host = card(tmp_path, iad=iad, cdol=LONG_CDOL1)
    data = cdol1(500) + H("101530") + bytes(20)
    ac = arqc(host, data)
    atc, cvr = ac[0x9F36], ac[0x9F10][3:7]
    sk = emv.session_key_common(mk(IMK_AC), atc)
    assert ac[0x9F26] == _retail_mac_openssl(sk, data + AIP_DEBIT + atc + cvr)
    req = request(ac, LONG_CDOL1, data)
    assert IssuerHost(store()).session(req) == "common"
    IssuerHost(store()).verify(req)


def test_the_host_refuses_cdol_data_of_the_wrong_length() -> None:
    with pytest.raises(DataError, match="the CDOL1 data do not match the CDOL1"):
        AuthRequest.from_card(
            PAN, PSN, atc=H("0001"), arqc=bytes(8), iad=IAD, aip=AIP_DEBIT, cdol=CDOL1,
            cdol_data=bytes(28),
        )  # fmt: skip


# -- card risk management and the log -------------------------------------------------------------


def test_crm_data_answer_get_data(tmp_path: Path) -> None:
    host = card(tmp_path)
    host.ok(SELECT_PBOC)
    for tag, value in CRM.items():
        assert get_data(host, tag) == value, f"{tag:04X}"
    assert get_data(host, 0x9F36) == H("0000")
    assert get_data(host, 0x9F13) == H("0000")
    assert get_data(host, 0x9F17) == H("03")
    assert get_data(host, 0x9F4D) == H("0B0A")
    assert host.send(H("80CA9F9900"))[1] == 0x6A88


def test_each_transaction_writes_a_log_record(tmp_path: Path) -> None:
    host = card(tmp_path, balance=900)
    host.ok(SELECT_PBOC)
    # the log exists but is empty
    assert host.send(H("00B2015C00"))[1] == 0x6A83
    # an offline e-cash purchase of 3.00 yuan: TC, one log record
    gpo(host, ec=True, amount=300)
    assert generate_ac(host, 0x40, cdol1(300))[0x9F27] == b"\x40"
    host.ok(SELECT_PBOC)
    gpo(host, ec=True, amount=50)
    assert generate_ac(host, 0x40, cdol1(50))[0x9F27] == b"\x40"
    newest, older = host.ok(H("00B2015C00")), host.ok(H("00B2025C00"))
    assert host.send(H("00B2035C00"))[1] == 0x6A83
    # 9A 9F21 9F02 9F03 9F1A 5F2A 9F4E 9C 9F36 (zeros where the terminal gave nothing)
    assert newest == (
        H("261122") + bytes(3) + H("000000000050") + bytes(6) + H("0156") + H("0156")
        + bytes(20) + b"\x00" + H("0002")
    )  # fmt: skip
    assert older[6:12] == H("000000000300") and older[-2:] == H("0001")
    assert len(newest) == sum(n for _, n in tlv.parse_dol(LOG_FORMAT))


def test_the_log_keeps_its_number_of_records(tmp_path: Path) -> None:
    host = card(tmp_path, balance=0)
    for _ in range(12):
        host.ok(SELECT_PBOC)
        gpo(host, ec=True, amount=1)
        assert generate_ac(host, 0x40, cdol1(1))[0x9F27] == b"\x00"  # AAC: no balance
    assert host.ok(H("00B2015C00"))[-2:] == H("000C")
    assert host.ok(H("00B20A5C00"))[-2:] == H("0003")
    assert host.send(H("00B20B5C00"))[1] == 0x6A83


def test_no_log_entry_no_log_file(tmp_path: Path) -> None:
    host = card(tmp_path, crm=False)
    host.ok(SELECT_PBOC)
    gpo(host, ec=True, amount=1)
    generate_ac(host, 0x40, cdol1(1))
    assert host.send(H("00B2015C00"))[1] == 0x6A83
    assert host.send(H("80CA9F4D00"))[1] == 0x6A88


# -- e-cash load from the authenticated balance ---------------------------------------------------


def _load(host: Host, issuer: IssuerHost, told_balance: int, amount: int) -> int:
    """An online load where the terminal tells the host ``told_balance`` as 9F79; returns the
    card's balance afterwards."""
    data = cdol1(amount)
    ac = arqc(host, data)
    answer = issuer.authorize_load(
        request(ac, CDOL1, data), balance=told_balance, limit=15000, amount=amount
    )
    host.ok(b"\x00\x82\x00\x00\x0a" + answer.external_authenticate_data)
    for script in answer.scripts:
        host.ok(script)
    generate_ac(host, 0x40, answer.arc + data)
    return int(get_data(host, 0x9F79).hex())


def test_a_terminal_lying_about_9f79_gains_nothing(tmp_path: Path) -> None:
    host = card(tmp_path, balance=1000)
    # the terminal claims 14000 fen: the host starts from the card's 1000
    assert _load(host, IssuerHost(store()), told_balance=14000, amount=500) == 1500
    # the terminal claims 0 to slip past the limit: the card's 1500 + 14000 passes 15000
    with pytest.raises(LoadRefused, match=r"balance 1500 \+ load 14000 .* limit 15000"):
        _load(host, IssuerHost(store()), told_balance=0, amount=14000)


def test_a_tampered_balance_in_9f10_is_refused(tmp_path: Path) -> None:
    host = card(tmp_path, balance=1000)
    data = cdol1(500)
    ac = arqc(host, data)
    iad = ac[0x9F10]
    forged = iad[:10] + H("0000000000") + iad[15:]  # balance 1000 -> 0, MAC kept
    req = request({**ac, 0x9F10: forged}, CDOL1, data)
    IssuerHost(store()).verify(req)  # the ARQC does not cover the balance ...
    with pytest.raises(MacMismatch, match="EC balance in 9F10 does not verify"):
        IssuerHost(store()).authorize_load(req, balance=0, limit=15000, amount=500)


def test_strict_host_refuses_a_request_without_the_card_balance() -> None:
    keys = HostKeys(require_card_balance=True)
    host = IssuerHost(store(), keys)
    sk = emv.session_key_pboc(mk(IMK_AC), H("0005"))
    data = bytes(29) + AIP_DEBIT + H("0005")
    req = AuthRequest(PAN, PSN, H("0005"), emv.application_cryptogram(sk, data), data)
    with pytest.raises(LoadRefused, match="lacks the balance the card authenticated") as info:
        host.authorize_load(req, balance=0, limit=15000, amount=1)
    assert info.value.field == "9F10"


def test_a_terminal_lying_about_the_limit_gains_nothing(tmp_path: Path) -> None:
    # a host whose limit is wrong (10**9, as a 9F77 a lying terminal told would be) still
    # cannot load past the card's limit: the card checks the balance against its own 9F77
    # when the script arrives, refuses it, and the balance stays
    host = card(tmp_path, balance=14000)
    data = cdol1(5000)
    ac = arqc(host, data)
    answer = IssuerHost(store()).authorize_load(
        request(ac, CDOL1, data), balance=0, limit=10**9, amount=5000
    )
    host.ok(b"\x00\x82\x00\x00\x0a" + answer.external_authenticate_data)
    assert host.send(answer.scripts[0])[1] == 0x6A80
    assert int(get_data(host, 0x9F79).hex()) == 14000


def test_the_request_repr_leaves_out_the_card_data() -> None:
    req = AuthRequest(PAN, PSN, H("0001"), bytes(8), b"secret-ish", IAD)
    assert PAN not in repr(req) and IAD.hex() not in repr(req).lower()
    assert "iad" not in repr(req) and "data" not in repr(req)


# -- the profile ----------------------------------------------------------------------------------


def _profile_with(tmp_path: Path, old: str, new: str) -> Path:
    from cardperso.profiles import load_profile

    text = Path(load_profile("ssc3-pboc").source).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "ssc3-pboc.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_profile_session_key_must_match_the_cvn(tmp_path: Path) -> None:
    from cardperso.errors import ProfileError
    from cardperso.profiles import load_profile

    assert load_profile("ssc3-pboc").pboc.session_key == "pboc"  # type: ignore[union-attr]
    path = _profile_with(tmp_path, "session_key: pboc ", "session_key: emv-csk ")
    with pytest.raises(ProfileError, match="emv-csk does not match the 9F10 CVN") as info:
        load_profile(str(path))
    assert "pboc.session_key" in str(info.value)
    # CVN 0A with emv-csk is a consistent EMV profile
    path = _profile_with(
        tmp_path,
        "iad: 07010103A0",
        "session_key: emv-csk\n  iad: 07010A03A0",
    )
    text = path.read_text(encoding="utf-8").replace("  session_key: pboc ", "  # was pboc ")
    path.write_text(text, encoding="utf-8")
    assert load_profile(str(path)).pboc.session_key == "emv-csk"  # type: ignore[union-attr]


def test_profile_refuses_a_malformed_9f10_before_any_card(tmp_path: Path) -> None:
    from cardperso.errors import ProfileError
    from cardperso.profiles import load_profile

    path = _profile_with(
        tmp_path,
        "iad: 07010103A00000010A01000000000000000000",
        "iad: 07010103A00000010A010000000000",
    )
    with pytest.raises(ProfileError, match="not PBOC's 9F10 layout") as info:
        load_profile(str(path))
    assert "pboc.iad" in str(info.value)
    path = _profile_with(tmp_path, "iad: 07010103A0000001", "iad: 07010103A0000004")
    with pytest.raises(ProfileError, match="9F10 algorithm must be 01"):
        load_profile(str(path))


def test_the_card_refuses_an_sm4_9f10_it_would_not_honour(tmp_path: Path) -> None:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    assert host.install_for_perso(PBOC_AID) == 0x9000
    sm4 = IAD[:7] + b"\x04" + IAD[8:]
    assert 0x6A80 in host.store_data(_replace(pboc_dgis(), 0x9200, sm4))


# -- the terminal's and the read-back's commands on answers the virtual card never gives ---------


def _answer(data: bytes) -> Callable[[bytes], bytes]:
    return lambda apdu: data + b"\x90\x00"


def test_gpo_reads_format_1_and_refuses_an_answer_without_aip_and_afl() -> None:
    from cardperso.chip import pboc_flows

    got = drive(pboc_flows.gpo(b""), _answer(H("80067C0008010100")))
    assert got == (H("7C00"), H("08010100"))
    assert drive(pboc_flows.gpo(b""), _answer(H("770A82027C00940408010100"))) == got
    with pytest.raises(CardError, match="no AIP/AFL in the answer") as info:
        drive(pboc_flows.gpo(b""), _answer(H("770482027C00")))
    assert (info.value.sw, info.value.command) == (0x6F00, "GET PROCESSING OPTIONS")


def test_generate_ac_refuses_a_malformed_answer_as_the_card_s() -> None:
    from cardperso.bank import terminal

    # format 1: CID 80 | ATC 0005 | AC (8) | 9F10
    fmt1 = H("80") + H("0005") + bytes(range(8)) + H("0701010300000001")
    got = drive(terminal.generate_ac("ARQC", b"x"), _answer(tlv.encode(0x80, fmt1)))
    assert (got.cid, got.atc, got.ac, got.iad) == ("ARQC", H("0005"), bytes(range(8)), fmt1[11:])
    with pytest.raises(CardError, match="shorter than 11 bytes"):
        drive(terminal.generate_ac("ARQC", b"x"), _answer(tlv.encode(0x80, fmt1[:9])))
    # format 2 with a 1-byte ATC: the card's fault (CardError), not a usage error of the host
    body = tlv.encode(0x9F27, H("80")) + tlv.encode(0x9F36, H("05")) + tlv.encode(0x9F26, bytes(8))
    with pytest.raises(CardError, match="an ATC not of 2 bytes") as info:
        drive(terminal.generate_ac("ARQC", b"x"), _answer(tlv.encode(0x77, body)))
    assert info.value.sw == 0x6F00


def test_the_terminal_tells_the_host_neither_9f79_nor_9f77(tmp_path: Path) -> None:
    """ec_load sends the host the card's 9F10 and the amount only: the balance comes from the
    card's MAC, the limit from the issuer (its record, else HostKeys.max_ec_balance)."""
    host = card(tmp_path, balance=1000)
    told: list[dict[str, object]] = []

    class Spy(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int | None):  # type: ignore[no-untyped-def]
            told.append(dict(kw))
            return super().authorize_load(req, **kw)  # type: ignore[arg-type]

    got = drive(terminal.ec_load(Spy(store()), 500), host.transport.transmit)
    assert told == [{"amount": 500}] and got.balance_after == 1500


def test_the_host_ceiling_without_a_record_of_the_card_limit(tmp_path: Path) -> None:
    host = card(tmp_path, balance=14000)
    data = cdol1(1)
    req = request(arqc(host, data), CDOL1, data)
    small = IssuerHost(store(), HostKeys(max_ec_balance=14000))
    with pytest.raises(LoadRefused, match="balance limit 14000"):
        small.authorize_load(req, amount=1)  # the card's authenticated 140.00 + 0.01
    assert IssuerHost(store()).authorize_load(req, amount=1).approved  # 1000.00 by default


def test_a_script_the_card_refuses_ends_with_an_aac_that_says_so(tmp_path: Path) -> None:
    """A load past the card's own 9F77 that a lying reader let through (it tells the terminal
    a 9F79 of 0) and the host's ceiling allows: the card refuses the script (6A80, balance
    unchanged), the terminal closes with a second GENERATE AC asking an AAC, and that AAC's CVR
    carries "issuer script failed" (byte 4 b4) for the issuer."""
    host = card(tmp_path, balance=14000)  # limit 150.00 (pboc_dgis)
    sent: list[bytes] = []
    answers: list[bytes] = []

    def wire(apdu: bytes) -> bytes:
        sent.append(apdu)
        if apdu[:4] == H("80CA9F79"):
            answers.append(tlv.encode(0x9F79, bytes(6)) + b"\x90\x00")
        else:
            answers.append(host.transport.transmit(apdu))
        return answers[-1]

    with pytest.raises(CardError) as err:
        drive(terminal.ec_load(IssuerHost(store()), 5000), wire)
    assert err.value.sw == 0x6A80
    last = tlv.to_dict(tlv.parse_one(answers[-1][:-2]).children)
    assert sent[-1][:3] == H("80AE00") and last[0x9F27] == b"\x00"
    assert last[0x9F10][6] == 0x18  # CVR byte 4: one script command processed, and it failed
    assert int(get_data(host, 0x9F79).hex()) == 14000
