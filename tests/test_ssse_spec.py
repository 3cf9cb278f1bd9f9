"""Social-security data as the specification has it (issue 12 item 3).

The card identification code (卡识别码) is region ‖ D1 56 00 00 05 ‖ 8 bytes the card maker
sets; public reader code shows bytes 9-12 as the chip serial of the ATR and no public source
has a CRC over the code, so none is invented (codec.fields.card_id_tail, docs/card-dgi-map.md).
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

import pytest

from cardperso.card.vcard import VirtualCard
from cardperso.chip.model import ChipFailure
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.script import card_id_with_serial, personalize
from cardperso.chip.transport import drive
from cardperso.codec.dgi import parse_dgis
from cardperso.codec.fields import card_id_tail
from cardperso.errors import ProfileError
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.build import ChunkBuilder
from cardperso.prep.cards import cards_of
from cardperso.prep.container import iter_records, read_header
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch, make_photo
from cardperso.prep.validate import Validator
from cardperso.profiles.loader import load_profile
from cardperso.sim.inprocess import InProcessTransport
from test_prep import known_record

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
SAMPLE_KEYS = PROFILES.parent / "keys-sample" / "keys.json"


def _profile_with(tmp_path: Path, old: str, new: str) -> Any:
    text = (PROFILES / "ssc3-pboc.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "ssc3-pboc.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_profile(path)


def _card_id(profile: Any, tmp_path: Path) -> bytes:
    (tmp_path / "p.jpg").write_bytes(make_photo(random.Random(1)))
    v = Validator(profile, tmp_path).check(known_record() | {"photo": "p.jpg"})
    cards = cards_of(Validator(profile, tmp_path), [known_record() | {"photo": "p.jpg"}])
    dgis = dict(parse_dgis(ChunkBuilder(profile).ssse_clear(cards)[0]))
    assert dgis[0x0501][:2] == b"\x01\x10"
    card_id: bytes = dgis[0x0501][2:]
    assert card_id == v["card_id"]
    return card_id


def test_card_id_tails() -> None:
    serial = bytes.fromhex("00BF7C7A")
    assert card_id_tail(serial, "chip-serial") == serial + b"\xff" * 4
    assert card_id_tail(serial, "ffffffff") == b"\xff" * 8
    with pytest.raises(ValueError, match="needs a 4-byte chip serial"):
        card_id_tail(b"\x01\x02", "chip-serial")
    with pytest.raises(ValueError, match="'crc32' needs"):
        card_id_tail(serial, "crc32")


def test_prep_leaves_the_serial_to_the_station_and_invents_no_check(tmp_path: Path) -> None:
    profile = load_profile("ssc3-pboc")
    assert profile.ssse.card_id.tail == "chip-serial"  # the default: what real cards show
    assert _card_id(profile, tmp_path) == bytes.fromhex("360426D15600000500000000FFFFFFFF")


def test_profile_tail_ffffffff(tmp_path: Path) -> None:
    profile = _profile_with(tmp_path, "tail: chip-serial", "tail: ffffffff")
    assert _card_id(profile, tmp_path) == bytes.fromhex("360426D156000005" + "FF" * 8)
    # the station keeps FF×8 whatever chip it is fed
    cid = bytes.fromhex("360426D156000005" + "FF" * 8)
    assert card_id_with_serial(cid, bytes.fromhex("0A0B0C0D"), "ffffffff") == cid


def test_the_station_puts_the_chip_serial_in() -> None:
    prepared = bytes.fromhex("360426D15600000500000000FFFFFFFF")
    done = card_id_with_serial(prepared, bytes.fromhex("AD932A48"), "chip-serial")
    assert done == bytes.fromhex("360426D156000005AD932A48FFFFFFFF")
    with pytest.raises(ChipFailure, match="is 7 bytes, the card id needs 4"):
        card_id_with_serial(prepared, bytes(7), "chip-serial")


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("tail: chip-serial", "tail: crc32", "tail"),
        ("tail: chip-serial", "check: crc32", "unknown field"),
    ],
)
def test_the_invented_crc_is_no_profile_choice(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    with pytest.raises(ProfileError, match=reason) as e:
        _profile_with(tmp_path, old, new)
    assert "ssse.card_id" in str(e.value)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("spec")
    make_batch(tmp / "batch.csv", 1, seed=5)
    out = tmp / "batch.perso"
    summary = prepare(
        tmp / "batch.csv", load_profile("ssc3-pboc"), SoftwareKeyStore.load(SAMPLE_KEYS),
        functools.partial(SoftwareKeyStore.load, SAMPLE_KEYS), out, tmp / "rejects.csv",
        PrepOptions(batch_id="SPEC1", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == 1
    return out


@pytest.mark.parametrize(("setting", "p2"), [(None, 0x01), ("zero", 0x00)])
def test_internal_authenticate_p2_is_a_profile_choice(
    prepared: Path, tmp_path: Path, setting: str | None, p2: int
) -> None:
    """The read-back's INTERNAL AUTHENTICATE names the IRK (01) or, as public readers send it,
    00 (profile ssse.internal_auth_p2); the card identification code read back carries the
    chip serial and FF×4."""
    profile = load_profile("ssc3-pboc")
    if setting is not None:
        profile = _profile_with(
            tmp_path,
            "internal_auth_p2: key-id",
            f"internal_auth_p2: {setting}",
        )
    store = SoftwareKeyStore.load(SAMPLE_KEYS)
    with prepared.open("rb") as fh:
        header, _ = read_header(fh)
    body = next(iter_records(prepared, store))[1]
    card = VirtualCard.create_blank(tmp_path / "card.json")
    transport = InProcessTransport(card)
    transport.connect()
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(apdu)
        return transport.transmit(apdu)

    plan = chip_plan(profile, header)
    result = drive(personalize(card_data(header, body, 0), plan, store), transmit)
    assert "ssse-records" in result.checks
    internal = [a for a in sent if a[:2] == b"\x00\x88"]
    assert [a[3] for a in internal] == [p2]
    assert result.card_id[8:] == card.serial + b"\xff" * 4
