"""The GP client of the chip engine (cardperso.chip) against the virtual card, in process.

PUT KEY replaces the key set the card named in its INITIALIZE UPDATE answer: a chip whose
vendor key set is not version FF is still re-keyed (the line's workflow once sent P1 = FF
whatever the card said, and such a card answered 6A88).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardperso.card.state import GP_TEST_KEY
from cardperso.card.vcard import VirtualCard
from cardperso.chip import gp
from cardperso.chip.transport import ApduCount, drive
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import CardError, CryptogramMismatch
from cardperso.layouts.gp import ISD_AID
from cardperso.sim.inprocess import InProcessTransport

TEST_KEYS = StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY, "3DES")
NEW_KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), "3DES")


def _card(tmp_path: Path, kvn: int = 0xFF) -> tuple[VirtualCard, InProcessTransport]:
    card = VirtualCard.create_blank(tmp_path / "card.json")
    card.state.isd.keys[0].kvn = kvn  # the vendor's key set under another version
    transport = InProcessTransport(card)
    transport.connect()
    return card, transport


@pytest.mark.parametrize("vendor_kvn", [0xFF, 0x01])
def test_put_key_replaces_the_key_set_the_card_named(tmp_path: Path, vendor_kvn: int) -> None:
    card, t = _card(tmp_path, vendor_kvn)
    session = drive(gp.open_domain(ISD_AID, TEST_KEYS), t.transmit)
    assert session.kvn == vendor_kvn  # the card's own answer, not an assumption
    drive(session.put_key(NEW_KEYS, 0x20), t.transmit)
    assert [ks.kvn for ks in card.state.isd.keys] == [0x20]
    # the new set opens the card; the vendor's no longer does
    again = drive(gp.open_domain(ISD_AID, NEW_KEYS), t.transmit)
    assert again.kvn == 0x20
    with pytest.raises(CryptogramMismatch):
        drive(gp.open_domain(ISD_AID, TEST_KEYS), t.transmit)


def test_put_key_command_p1_is_the_replaced_version() -> None:
    command = gp.put_key_command(NEW_KEYS, 0x21, lambda k: k, replace_kvn=0x20)
    assert command[:4] == bytes.fromhex("80D82081")
    assert command[5] == 0x21
    aes = StaticKeys(bytes(16), bytes(16), bytes(16), "AES")
    assert gp.put_key_command(aes, 0x30, lambda k: k)[6:9] == b"\x88\x11\x10"


def test_read_serial_and_refusals_name_the_step(tmp_path: Path) -> None:
    card, t = _card(tmp_path)
    count = ApduCount()
    assert drive(count(gp.read_serial()), t.transmit) == card.serial
    assert count.n == 2  # SELECT ISD, GET DATA CPLC
    with pytest.raises(CardError, match=r"^SELECT domain: card returned 6A82") as err:
        drive(gp.open_domain(bytes.fromhex("A0000001519999"), TEST_KEYS), t.transmit)
    assert err.value.sw == 0x6A82
    with pytest.raises(CardError, match=r"^INITIALIZE UPDATE: card returned 6A88"):
        drive(gp.open_domain(ISD_AID, TEST_KEYS, kvn=0x42), t.transmit)


def test_the_line_script_rekeys_a_chip_whose_vendor_keys_are_not_version_ff(
    tmp_path: Path,
) -> None:
    import functools

    from cardperso.chip.plan import card_data, chip_plan
    from cardperso.chip.script import personalize
    from cardperso.keystore.software import SoftwareKeyStore
    from cardperso.prep.container import iter_records, read_header
    from cardperso.prep.pipeline import PrepOptions, prepare
    from cardperso.prep.synth import make_batch
    from cardperso.profiles.loader import load_profile

    keys = Path(__file__).resolve().parent.parent / "keys-sample" / "keys.json"
    store = SoftwareKeyStore.load(keys)
    make_batch(tmp_path / "batch.csv", 1, seed=5)
    profile = load_profile("ssc3-pboc")
    out = tmp_path / "batch.perso"
    prepare(
        tmp_path / "batch.csv", profile, store, functools.partial(SoftwareKeyStore.load, keys),
        out, tmp_path / "rejects.csv", PrepOptions(batch_id="GP1", created=1_700_000_000),
    )  # fmt: skip
    with out.open("rb") as fh:
        header, _ = read_header(fh)
    ((_, body),) = list(iter_records(out, store))
    card, t = _card(tmp_path, 0x01)
    plan = chip_plan(profile, header)
    result = drive(personalize(card_data(header, body, 0), plan, store), t.transmit)
    assert result.checks == ("ssse-records", "pboc-records", "arqc")
    assert [ks.kvn for ks in card.state.isd.keys] == [plan.new_kvn]
