"""Card risk management enforced by the virtual card (issue 13 item 4): each rule driven by a
sequence of transactions, the decision (TC / ARQC / AAC) and the CVR byte 3 it sets.

The rules are VIS's, which PBOC 3.0 takes over (JR/T 0025.5; cardperso.card.pboc_crm): the
lower / upper consecutive offline limits 9F58 / 9F59, the cumulative offline amount limits
9F54 / 9F5C, the application default action 9F52, the issuer authentication indicator 9F56,
the last online ATC 9F13. The CVR bits follow VIS's CVR byte 3 (80 last online transaction
not completed, 20 velocity exceeded, 10 new card, 08 issuer authentication failed last time, 04
issuer authentication not performed), the values a public PBOC card test suite expects
("A0 10 00" for a new card going online, "80 20 00" for a decline on a velocity counter).
"""

from __future__ import annotations

from pathlib import Path

from cardperso.card import VirtualCard
from cardperso.codec import tlv
from cardperso.crypto import emv
from test_card_pboc import SELECT_PBOC, cdol1, generate_ac, get_data, gpo, issuer_keys
from test_card_support import PBOC_AID, Host, install_pboc, new_card, pboc_dgis

H = bytes.fromhex
TC, ARQC, AAC = b"\x40", b"\x80", b"\x00"


def crm_card(tmp_path: Path, **objects: str) -> Host:
    """A PBOC card whose 0E01 carries ``objects`` (tag hex -> value hex)."""
    host = Host(new_card(tmp_path))
    host.authenticate(0x03)
    install_pboc(host)
    data = b"".join(tlv.encode(int(t[1:], 16), H(v)) for t, v in objects.items())
    host.personalize(PBOC_AID, [*pboc_dgis(), (0x0E01, data, False)])
    return host


def first_ac(host: Host, p1: int, amount: int) -> dict[int, bytes]:
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    return generate_ac(host, p1, cdol1(amount))


def cvr3(answer: dict[int, bytes]) -> int:
    return answer[0x9F10][5]


def approve_online(host: Host, ac: dict[int, bytes], *, arpc_ok: bool = True) -> dict[int, bytes]:
    """EXTERNAL AUTHENTICATE with the issuer's ARPC (or a wrong one), then the 2nd GENERATE AC."""
    sk_ac, _ = issuer_keys(ac[0x9F36])
    arpc = emv.arpc_method1(sk_ac, ac[0x9F26], b"00") if arpc_ok else bytes(8)
    host.send(b"\x00\x82\x00\x00\x0a" + arpc + b"00")
    return generate_ac(host, 0x40, b"00" + cdol1(0))


def unable_online(host: Host, amount: int, arc: bytes = b"Y3") -> dict[int, bytes]:
    """The terminal could not go online: second GENERATE AC asking a TC with ARC Y3."""
    return generate_ac(host, 0x40, arc + cdol1(amount))


def test_without_an_offline_limit_the_card_never_approves_debit_offline(tmp_path: Path) -> None:
    host = crm_card(tmp_path, x9F52="0000")
    for _ in range(2):
        answer = first_ac(host, 0x40, 100)
        assert answer[0x9F27] == ARQC
        unable_online(host, 100, b"Z3")


def test_lower_then_upper_consecutive_offline_limit(tmp_path: Path) -> None:
    host = crm_card(tmp_path, x9F58="02", x9F59="03", x9F52="0000")
    # two offline approvals within the lower limit (new card: CVR 10 only, ADA asks nothing)
    for n in (1, 2):
        answer = first_ac(host, 0x40, 100)
        assert answer[0x9F27] == TC and cvr3(answer) == 0x10, n
    assert host.card.state.pboc.offline_count == 2
    # the third exceeds the lower limit: the card goes online (CVR 20 velocity exceeded)
    answer = first_ac(host, 0x40, 100)
    assert answer[0x9F27] == ARQC and cvr3(answer) & 0x20
    # the terminal cannot go online: below the upper limit the card approves offline
    second = unable_online(host, 100)
    assert second[0x9F27] == TC and second[0x9F10][4] & 0x01  # CVR: unable to go online
    # the fourth: online again, and offline now passes the upper limit: declined
    assert first_ac(host, 0x40, 100)[0x9F27] == ARQC
    assert unable_online(host, 100)[0x9F27] == AAC
    assert host.card.state.pboc.offline_count == 3
    # an online approval with issuer authentication resets the counters
    answer = first_ac(host, 0x40, 100)
    assert approve_online(host, answer)[0x9F27] == TC
    assert get_data(host, 0x9F13) == answer[0x9F36]
    assert host.card.state.pboc.offline_count == 0
    answer = first_ac(host, 0x40, 100)
    assert answer[0x9F27] == TC and cvr3(answer) == 0  # no longer a new card


def test_cumulative_offline_amount_limits(tmp_path: Path) -> None:
    host = crm_card(
        tmp_path, x9F58="09", x9F59="09", x9F54="000000010000", x9F5C="000000015000", x9F52="0000"
    )
    assert first_ac(host, 0x40, 6000)[0x9F27] == TC  # 60.00 of 100.00
    answer = first_ac(host, 0x40, 5000)  # 110.00 > 100.00: online
    assert answer[0x9F27] == ARQC and cvr3(answer) & 0x20
    assert unable_online(host, 5000)[0x9F27] == TC  # 110.00 <= 150.00 upper: offline
    assert host.card.state.pboc.offline_amount == 11000
    assert first_ac(host, 0x40, 5000)[0x9F27] == ARQC
    assert unable_online(host, 5000)[0x9F27] == AAC  # 160.00 > 150.00: declined
    # another currency counts for neither limit but never approves offline
    host.ok(SELECT_PBOC)
    gpo(host, ec=False)
    other = cdol1(1)[:19] + H("0840") + cdol1(1)[21:]  # 5F2A (bytes 19-20) = USD
    assert generate_ac(host, 0x40, other)[0x9F27] == ARQC


def test_new_card_goes_online_or_declines_per_the_ada(tmp_path: Path) -> None:
    host = crm_card(tmp_path, x9F58="05", x9F59="05", x9F52="00C0")  # 80 online, 40 decline
    answer = first_ac(host, 0x40, 100)
    assert answer[0x9F27] == ARQC and cvr3(answer) == 0x10
    assert unable_online(host, 100)[0x9F27] == AAC  # new card, unable to go online: declined
    answer = first_ac(host, 0x40, 100)
    assert approve_online(host, answer)[0x9F27] == TC
    assert first_ac(host, 0x40, 100)[0x9F27] == TC  # no longer new: offline within limits


def test_issuer_authentication_failure_sends_the_next_transaction_online(
    tmp_path: Path,
) -> None:
    host = crm_card(tmp_path, x9F58="05", x9F59="05", x9F52="C000")  # 80 next online, 40 decline
    answer = first_ac(host, 0x80, 100)
    assert approve_online(host, answer, arpc_ok=False)[0x9F27] == AAC  # ADA 40
    assert host.card.state.pboc.issuer_auth_failed
    answer = first_ac(host, 0x40, 100)
    assert answer[0x9F27] == ARQC and cvr3(answer) & 0x08
    assert approve_online(host, answer)[0x9F27] == TC
    assert not host.card.state.pboc.issuer_auth_failed
    assert first_ac(host, 0x40, 100)[0x9F27] == TC


def test_mandatory_issuer_authentication_without_arpc_declines(tmp_path: Path) -> None:
    host = crm_card(tmp_path, x9F56="80", x9F52="2000")
    answer = first_ac(host, 0x80, 100)
    second = generate_ac(host, 0x40, b"00" + cdol1(100))  # online answer, but no ARPC
    assert second[0x9F27] == AAC and cvr3(second) & 0x04
    # not mandatory: the same sequence is approved
    (tmp_path / "b").mkdir()
    host2 = crm_card(tmp_path / "b", x9F52="2000")
    answer = first_ac(host2, 0x80, 100)
    assert generate_ac(host2, 0x40, b"00" + cdol1(100))[0x9F27] == TC
    assert answer[0x9F27] == ARQC


def test_an_online_transaction_left_unfinished_sends_the_next_one_online(tmp_path: Path) -> None:
    host = crm_card(tmp_path, x9F58="05", x9F59="05", x9F52="0000")
    assert first_ac(host, 0x80, 100)[0x9F27] == ARQC
    host.card.power_off()  # the card leaves the field before the second GENERATE AC
    host.transport.connect()
    assert VirtualCard.load(host.card.path).state.pboc.online_pending
    answer = first_ac(host, 0x40, 100)
    assert answer[0x9F27] == ARQC and cvr3(answer) & 0x80
    assert approve_online(host, answer)[0x9F27] == TC
    assert not host.card.state.pboc.online_pending


def test_crm_data_answer_get_data(tmp_path: Path) -> None:
    host = crm_card(
        tmp_path, x9F58="02", x9F59="03", x9F54="000000010000", x9F52="6010", x9F56="80"
    )
    host.ok(SELECT_PBOC)
    for tag, value in {0x9F58: "02", 0x9F59: "03", 0x9F54: "000000010000", 0x9F52: "6010"}.items():
        assert get_data(host, tag) == H(value)
    assert get_data(host, 0x9F13) == b"\x00\x00"


def test_pin_try_limit_exceeded_declines_or_goes_online_per_the_ada(tmp_path: Path) -> None:
    for ada, expected in (("0200", AAC), ("0100", ARQC), ("0000", TC)):
        (tmp_path / ada).mkdir()
        host = crm_card(tmp_path / ada, x9F58="05", x9F59="05", x9F52=ada)
        host.ok(SELECT_PBOC)
        for _ in range(3):  # three wrong offline PINs block it (try limit 3)
            host.send("0020008008241235FFFFFFFFFF")
        assert host.send("0020008008241234FFFFFFFFFF")[1] == 0x6983
        answer = first_ac(host, 0x40, 100)
        assert answer[0x9F27] == expected and cvr3(answer) & 0x40, ada


def test_consecutive_offline_limit_in_another_currency(tmp_path: Path) -> None:
    """9F53 (VIS "consecutive transaction limit, international"): that many offline debit
    transactions in a currency other than 9F51, then online; an online approval resets it."""
    host = crm_card(tmp_path, x9F58="09", x9F59="09", x9F53="02", x9F52="0000", x9F51="0156")
    usd = cdol1(100)[:19] + H("0840") + cdol1(100)[21:]  # 5F2A (bytes 19-20) = USD

    def foreign(p1: int) -> dict[int, bytes]:
        host.ok(SELECT_PBOC)
        gpo(host, ec=False)
        return generate_ac(host, p1, usd)

    assert [foreign(0x40)[0x9F27] for _ in range(2)] == [TC, TC]
    assert first_ac(host, 0x40, 100)[0x9F27] == TC  # the application currency: not counted
    answer = foreign(0x40)
    assert answer[0x9F27] == ARQC and cvr3(answer) & 0x20
    assert approve_online(host, answer)[0x9F27] == TC
    assert host.card.state.pboc.offline_intl_count == 0
    assert foreign(0x40)[0x9F27] == TC
