"""The issuer host (ARQC, ARPC method 1, issuer scripts) and the sans-IO terminal flows
(EC balance, EC load, quality-control verify, offline EC purchase) against an in-process
virtual card personalized by tests/test_card_support.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardperso.bank import terminal
from cardperso.bank.host import (
    AuthRequest,
    AuthResponse,
    HostKeys,
    IssuerHost,
    LoadRefused,
    mask_pan,
    n12,
)
from cardperso.chip.transport import drive
from cardperso.codec import tlv
from cardperso.crypto import emv
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import CardError, CryptogramMismatch, DataError, MacMismatch
from cardperso.keystore.software import SoftwareKeyStore
from test_card_support import (
    IMK_AC,
    IMK_SMC,
    IMK_SMI,
    PAN,
    PBOC_AID,
    PSN,
    Host,
    install_pboc,
    new_card,
    pboc_dgis,
)


def store(ac: bytes = IMK_AC, smi: bytes = IMK_SMI) -> SoftwareKeyStore:
    return SoftwareKeyStore(
        [
            SecretKey("3DES", ac, "pboc-imk-ac"),
            SecretKey("3DES", smi, "pboc-imk-smi"),
            SecretKey("3DES", IMK_SMC, "pboc-imk-smc"),
        ],
        test_keys=True,
    )


def card_host(tmp_path: Path, balance: int = 0, limit: int = 15000) -> Host:
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    host.personalize(PBOC_AID, pboc_dgis(balance=balance, limit=limit))
    return host


def balance_of(host: Host) -> int:
    return host.card.state.pboc.ec_balance


ATC = b"\x00\x05"
ARQC = bytes.fromhex("1122334455667788")


def test_arpc_method1_and_script_mac_match_the_emv_functions() -> None:
    # expected values from cardperso.crypto.emv directly (EMV Book 2 8.2.1 and 9.2.3) under
    # the default session keys: PBOC's (00x6 ‖ ATC, 00x6 ‖ ATC xor FFFF)
    host = IssuerHost(store())
    req = AuthRequest(PAN, PSN, ATC, ARQC, b"")
    mk_ac = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    mk_smi = emv.derive_icc_master_key_a(IMK_SMI, PAN, PSN)
    assert host.arpc(req) == emv.arpc_method1(emv.session_key_pboc(mk_ac, ATC), ARQC, b"00")
    script = host.put_data_script(req, 0x9F79, 12345)
    header, value = bytes.fromhex("04DA9F79"), n12(12345)
    mac = emv.issuer_script_mac(
        emv.session_key_pboc(mk_smi, ATC), header + b"\x0a" + ATC + ARQC + value
    )[:4]
    assert script == header + b"\x0a" + value + mac


def test_verify_raises_on_a_wrong_cryptogram() -> None:
    host = IssuerHost(store())
    mk = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    data = bytes(range(40))
    good = emv.application_cryptogram(emv.session_key_pboc(mk, ATC), data)
    host.verify(AuthRequest(PAN, PSN, ATC, good, data))
    with pytest.raises(CryptogramMismatch):
        host.verify(AuthRequest(PAN, PSN, ATC, bytes(8), data))
    with pytest.raises(CryptogramMismatch):
        IssuerHost(store(ac=IMK_SMI)).verify(AuthRequest(PAN, PSN, ATC, good, data))


def test_load_past_the_limit_is_refused_by_the_host() -> None:
    # a request without the card's 9F10: only a host told to trust the terminal's balance
    req_keys = HostKeys(require_card_balance=False)
    host = IssuerHost(store(), req_keys)
    mk = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    ac = emv.application_cryptogram(emv.session_key_pboc(mk, ATC), b"x")
    req = AuthRequest(PAN, PSN, ATC, ac, b"x")
    with pytest.raises(LoadRefused, match=r"balance 14000 \+ load 1001 .* limit 15000") as info:
        host.authorize_load(req, balance=14000, limit=15000, amount=1001)
    assert info.value.field == "amount"
    ok = host.authorize_load(req, balance=14000, limit=15000, amount=1000)
    # one script: PUT DATA 9F79 (balance) = 15000 fen, n12, then its 4-byte MAC
    assert ok.arc == b"00" and len(ok.scripts) == 1
    assert ok.scripts[0][:11] == bytes.fromhex("04DA9F790A000000015000")


def test_request_repr_and_mask_hide_the_pan() -> None:
    req = AuthRequest(PAN, PSN, ATC, ARQC, b"")
    assert PAN not in repr(req)
    assert mask_pan(PAN) == "621483******0019"
    assert HostKeys().session == "pboc"


def test_default_host_refuses_a_load_without_the_card_balance() -> None:
    # the terminal's balance alone is not enough unless the host is told to trust it
    mk = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    req = AuthRequest(
        PAN, PSN, ATC, emv.application_cryptogram(emv.session_key_pboc(mk, ATC), b"x"), b"x"
    )
    with pytest.raises(LoadRefused, match="lacks the balance the card authenticated") as info:
        IssuerHost(store()).authorize_load(req, balance=0, limit=15000, amount=1)
    assert info.value.field == "9F10"


@given(st.integers(min_value=0, max_value=999_999_999_999))
def test_n12_round_trip(amount: int) -> None:
    assert int(n12(amount).hex()) == amount


def test_n12_refuses_out_of_range() -> None:
    with pytest.raises(DataError, match=r"must be 0\.\.999999999999 fen") as info:
        n12(10**12)
    assert info.value.field == "amount"


# -- terminal flows, in process --------------------------------------------------------------


def test_ec_balance_through_pse(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=250)
    got = drive(terminal.ec_balance(), host.transport.transmit)
    assert (got.balance, got.balance_limit, got.single_limit, got.reset_threshold) == (
        250,
        15000,
        1000,
        1500,
    )
    assert got.via == "PSE"
    assert drive(terminal.ec_balance("PPSE"), host.transport.transmit).via == "PPSE"


def test_ec_load_then_purchase(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=100)
    issuer = IssuerHost(store())
    result = drive(terminal.ec_load(issuer, 5000), host.transport.transmit)
    assert (result.balance_before, result.balance_after, result.second_cid) == (100, 5100, "TC")
    assert balance_of(host) == 5100
    bought = drive(terminal.ec_purchase(700), host.transport.transmit)
    assert bought.approved and (bought.balance_before, bought.balance_after) == (5100, 4400)
    too_much = drive(terminal.ec_purchase(1001), host.transport.transmit)  # > single limit
    assert too_much.cid == "AAC" and too_much.balance_after == 4400


def test_load_past_limit_refused_before_the_card_changes(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=14000)
    atc = host.card.state.pboc.atc
    with pytest.raises(LoadRefused, match=r"balance 14000 \+ load 1001 would pass") as info:
        drive(terminal.ec_load(IssuerHost(store()), 1001), host.transport.transmit)
    assert info.value.field == "amount"
    assert balance_of(host) == 14000
    assert host.card.state.pboc.atc == atc  # no GPO was sent


def test_wrong_issuer_keys_refused_and_balance_unchanged(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=10)
    wrong = IssuerHost(store(ac=IMK_SMC))
    with pytest.raises(CryptogramMismatch):
        drive(terminal.ec_load(wrong, 100), host.transport.transmit)
    assert balance_of(host) == 10


def test_wrong_script_mac_refused_and_balance_unchanged(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=10)
    # right AC key, wrong SMI key: the card's balance MAC in 9F10 does not verify at the host,
    # which refuses before making a script
    wrong_smi = IssuerHost(store(smi=IMK_SMC))
    with pytest.raises(MacMismatch, match="EC balance in 9F10 does not verify"):
        drive(terminal.ec_load(wrong_smi, 100), host.transport.transmit)
    assert balance_of(host) == 10

    # a script whose MAC is altered on the way: the card refuses it
    class BadMac(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int):  # type: ignore[no-untyped-def]
            answer = super().authorize_load(req, **kw)
            script = answer.scripts[0]
            return AuthResponse(answer.arc, answer.arpc, (script[:-1] + bytes((script[-1] ^ 1,)),))

    with pytest.raises(CardError) as err:
        drive(terminal.ec_load(BadMac(store()), 100), host.transport.transmit)
    assert err.value.sw == 0x6988
    assert balance_of(host) == 10


def test_replayed_script_refused(tmp_path: Path) -> None:
    host = card_host(tmp_path, balance=0)
    issuer = IssuerHost(store())
    sent: list[bytes] = []

    def record(apdu: bytes) -> bytes:
        sent.append(apdu)
        return host.transport.transmit(apdu)

    drive(terminal.ec_load(issuer, 300), record)
    script = next(a for a in sent if a[:2] == b"\x04\xda")
    assert balance_of(host) == 300

    # a later transaction replays the captured script instead of the host's
    class Replay(IssuerHost):
        def authorize_load(self, req: AuthRequest, **kw: int):  # type: ignore[no-untyped-def]
            answer = super().authorize_load(req, **kw)
            return type(answer)(answer.arc, answer.arpc, (script,))

    with pytest.raises(CardError) as err:
        drive(terminal.ec_load(Replay(store()), 9000), host.transport.transmit)
    assert err.value.sw == 0x6988
    assert balance_of(host) == 300


def test_verify_card_checks_the_arqc(tmp_path: Path) -> None:
    host = card_host(tmp_path)
    result = drive(terminal.verify_card(IssuerHost(store())), host.transport.transmit)
    assert "arqc" in result.checks and "issuer-authentication" in result.checks
    assert result.via == "PSE" and result.aid == PBOC_AID
    with pytest.raises(CryptogramMismatch):
        drive(terminal.verify_card(IssuerHost(store(ac=IMK_SMI))), host.transport.transmit)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=40))
def test_dol_parser_never_crashes_unexpectedly(dol: bytes) -> None:
    try:
        pairs = tlv.parse_dol(dol)
    except DataError:
        return
    # what parses is exactly the list of (tag, one-byte length) pairs, nothing skipped
    rebuilt = b"".join(
        tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big") + bytes([length])
        for tag, length in pairs
    )
    assert rebuilt == dol


def test_cli_host_verify_and_script(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    path = tmp_path / "bank.json"
    store().save(path)
    mk = emv.derive_icc_master_key_a(IMK_AC, PAN, PSN)
    data = bytes(range(30))
    ac = emv.application_cryptogram(emv.session_key_pboc(mk, ATC), data)
    common = ["--keys", str(path), "--pan", PAN, "--psn", PSN, "--atc", ATC.hex()]
    runner = CliRunner()
    out = runner.invoke(
        cli, ["bank", "host", "verify-arqc", *common, "--arqc", ac.hex(), "--data", data.hex()]
    )
    assert out.exit_code == 0, out.output
    assert PAN not in out.output and "ARPC" in out.output
    bad = runner.invoke(
        cli, ["bank", "host", "verify-arqc", *common, "--arqc", "00" * 8, "--data", data.hex()]
    )
    assert bad.exit_code == 1 and "does not verify" in bad.output
    script = runner.invoke(
        cli,
        ["bank", "host", "script", *common, "--arqc", ac.hex(), "--tag", "9F79", "--amount", "5"],
    )
    assert script.exit_code == 0 and script.output.startswith("04DA9F790A000000000005")
    # the card's 9F10 picks the session key: CVN 0A is not PBOC's, so the EMV common one
    iad = "07010A03A0000001"
    csk = emv.application_cryptogram(emv.session_key_common(mk, ATC), data)
    req = ["bank", "host", "verify-arqc", *common, "--arqc", csk.hex(), "--data", data.hex()]
    assert runner.invoke(cli, [*req, "--iad", iad]).exit_code == 0
    pboc_only = runner.invoke(cli, req)
    assert pboc_only.exit_code == 1 and "does not verify" in pboc_only.output
    bad_iad = runner.invoke(cli, [*req, "--iad", "0x"])
    assert bad_iad.exit_code == 2 and "--iad: not hex" in bad_iad.output


def test_cli_production_refuses_the_bank_test_keys(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cardperso.cli.main import _register, cli

    _register()
    bank = str(Path(__file__).parents[1] / "keys-sample" / "bank-keys.json")
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["bank", "host", "script", "--keys", bank, "--pan", PAN, "--atc", "0001",
         "--arqc", "00" * 8, "--tag", "9F79", "--amount", "1", "--production"],
    )  # fmt: skip
    assert out.exit_code == 1 and "production refuses a software key store" in out.output
    out = runner.invoke(
        cli,
        ["bank", "transport-keys", "--profile", "ssc3-pboc-2stage", "--keys", bank, "--batch",
         "B1", "--out", str(tmp_path / "d.json"), "--production", "--allow-software-keystore"],
    )  # fmt: skip
    # refused as a published sample key (by its check value: keys-sample/bank-keys.json's KMC)
    assert out.exit_code == 1, out.output
    assert out.output == "error: production refuses key 'bank-kmc': it is a published sample key\n"
    assert not (tmp_path / "d.json").exists()
