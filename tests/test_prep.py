"""Data preparation end to end: known bytes, key vectors, round trips, determinism, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardperso.codec import tlv
from cardperso.codec.columns import Var
from cardperso.codec.dgi import parse_dgis
from cardperso.codec.numbers import card_number_check_char, luhn_check_digit, resident_id_check_char
from cardperso.crypto import emv, kcv, ssse
from cardperso.crypto import primitives as cp
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts.ssse import EF05, EF06
from cardperso.prep.build import ChunkBuilder
from cardperso.prep.cards import Cards, cards_of
from cardperso.prep.container import batch_keys, iter_records, verify
from cardperso.prep.keys import ChunkKeys, pin_block, seeded_pin
from cardperso.prep.pipeline import Preparer, PrepOptions, prepare
from cardperso.prep.synth import COLUMNS, make_batch, make_photo
from cardperso.prep.validate import Validator
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")
SSC2 = load_profile("ssc2-pboc")
TEMPORARY = load_profile("ssc3-temporary")
SEED = bytes(range(32))


def known_record() -> dict[str, Any]:
    """The hand-checked record: 360426199101010071 and X00000019 are the published valid
    examples of social-security-card.md."""
    return {
        "ssn": "360426199101010071",
        "name": "张三",
        "gender": "1",
        "nation": "01",
        "birth_date": "19910101",
        "birth_place": "360426",
        "region": "360426",
        "card_no": "X00000019",
        "issue_date": "20260115",
        "expiry_date": "20360115",
        "photo": "",
        "bank_code": "103",
        "pan": "6228480000000000000",
        "pan_seq": "01",
    }


def test_ef05_ef06_bytes_of_a_known_record(tmp_path: Path) -> None:
    """Expected bytes written by hand from social-security-card.md (record = tag ‖ len ‖ value,
    DGI = SFI ‖ record number, docs/card-dgi-map.md)."""
    (tmp_path / "p.jpg").write_bytes(make_photo(random.Random(1)))
    cards = cards_of(Validator(PROFILE, tmp_path), [known_record() | {"photo": "p.jpg"}])
    dgis = dict(parse_dgis(ChunkBuilder(PROFILE).ssse_clear(cards)[0]))
    # card identification code: region 360426 ‖ D1 56 00 00 05 ‖ serial placeholder 00000000
    # ‖ FF×4 (profile tail chip-serial: no invented check value)
    cic = "360426D15600000500000000FFFFFFFF"
    expected = {
        0x0501: "0110" + cic,
        0x0502: "0201" + "33",  # "3"
        0x0503: "0304" + "332E3030",  # "3.00"
        0x0504: "040C" + "156000000000000000000001",
        0x0505: "0504" + "20260115",
        0x0506: "0604" + "20360115",
        0x0507: "0709" + "583030303030303139",  # "X00000019"
        0x0601: "0812" + "333630343236313939313031303130303731",
        0x0602: "091E" + "D5C5C8FD" + "00" * 26,  # 张三 in GBK, 00-padded to 30
        0x0603: "4E14" + "00" * 20,
        0x0604: "0A01" + "31",
        0x0605: "0B01" + "01",
        0x0606: "0C03" + "360426",
        0x0607: "0D04" + "19910101",
        0x0D01: "EA0C" + "303030303030303030303030",
        0x0D02: "EB03" + "360426",
        0x9F0C: "0303",
        0x9F10: "0303",
    }
    assert {k: v.hex().upper() for k, v in dgis.items()} == expected
    # and the project's EF05 / EF06 layouts read them back
    ef05 = EF05.decode(b"".join(dgis[0x0500 | r] for r in range(1, 8)))
    assert (ef05.card_number, ef05.issue_date, ef05.spec_version) == (
        "X00000019",
        "20260115",
        "3.00",
    )
    ef06 = EF06.decode(b"".join(dgis[0x0600 | r] for r in range(1, 8)))
    assert (ef06.name, ef06.social_security_number, ef06.gender) == (
        "张三",
        "360426199101010071",
        "1",
    )


def _store(keys: dict[str, tuple[str, str]]) -> SoftwareKeyStore:
    doc = {
        "format": "cardperso-keystore/1",
        "test_keys": True,
        "keys": {
            name: {"algorithm": alg, "value": value, "kcv": kcv(alg, bytes.fromhex(value)).hex()}
            for name, (alg, value) in keys.items()
        },
    }
    return SoftwareKeyStore.from_document(doc)


def test_pboc_card_master_keys_match_the_option_a_vector(sample_keystore: SoftwareKeyStore) -> None:
    """EMV Book 2 A1.4.1 option A vector published in the pyemv documentation
    (globalplatform-emv.md): IMK 0123456789ABCDEFFEDCBA9876543210, PAN 99012345678901234,
    PSN 45 → 67F8292358083E5EA7AB7FDA58D53B6B."""
    imk = "0123456789ABCDEFFEDCBA9876543210"
    doc = json.loads(Path(sample_keystore.location.removeprefix("file:")).read_text())
    symmetric = ("3DES", "AES", "SM4")
    keys = {
        n: (k["algorithm"], k["value"])
        for n, k in doc["keys"].items()
        if "value" in k and k["algorithm"] in symmetric
    }
    keys |= {"pboc-imk-ac": ("3DES", imk), "pboc-imk-smi": ("3DES", imk)}
    keys |= {"pboc-imk-smc": ("3DES", imk)}
    store = _store(keys)
    card = {"pan": "99012345678901234", "pan_seq": "45", "ssn": "360426199101010071"}
    card |= {"card_no": "X00000019", "pin": ""}
    got = ChunkKeys(store, PROFILE, SEED).derive(_key_cards([card]))
    clear = store.unwrap("transport-kek", got.pboc_mk[0].tobytes())
    assert clear[:16].hex().upper() == "67F8292358083E5EA7AB7FDA58D53B6B"
    assert clear == bytes.fromhex("67F8292358083E5EA7AB7FDA58D53B6B") * 3
    assert got.pboc_kcv[0].tobytes() == kcv("3DES", clear[:16]) * 3


def _key_cards(dicts: list[dict[str, str]]) -> Cards:
    """A chunk of cards holding only what the key work reads (identity number, card number,
    PAN, PAN sequence number, input PIN)."""
    n = len(dicts)
    text = {f: [d[f] for d in dicts] for f in ("ssn", "pan", "pan_seq")}
    card_no = np.frombuffer("".join(d["card_no"] for d in dicts).encode(), np.uint8)
    z = np.zeros((n, 0), np.uint8)
    return Cards(
        n, np.arange(n), text, {"card_no": card_no.reshape(n, 9)},
        Var(np.zeros(0, np.uint8), np.zeros(n, np.int64)), z, z, z, z, np.zeros((n, 4), np.int64),
        [d["pin"] for d in dicts], [""] * n, z,
    )  # fmt: skip


def test_fast_key_path_equals_the_key_store_derivations(sample_keystore: SoftwareKeyStore) -> None:
    """The software fast path gives the same bytes as derive_emv_a / derive_ssse / crypto."""
    cards = []
    for i in range(5):
        body = f"6228480000{i:08d}"
        cbody = f"A{i:07d}"
        cards.append(
            {
                "pan": body + luhn_check_digit(body),
                "pan_seq": f"{i:02d}",
                "ssn": "360426199101010071",
                "card_no": cbody + card_number_check_char(cbody),
                "pin": "123456" if i == 2 else "",
            }
        )
    fast = ChunkKeys(sample_keystore, PROFILE, SEED)
    slow = ChunkKeys(sample_keystore, PROFILE, SEED)
    slow.fast = False
    got = fast.derive(_key_cards(cards))
    ref = slow.derive(_key_cards(cards))
    for name in ("pboc_mk", "pboc_kcv", "ssse", "pins"):
        assert (getattr(got, name) == getattr(ref, name)).all(), name
    kek = "transport-kek"
    for i, card in enumerate(cards):
        ac = emv.derive_icc_master_keys_a(
            bytes.fromhex("1AFE198C042F8C43B09B31A4F88013E0"), [(card["pan"], card["pan_seq"])]
        )[0]
        assert sample_keystore.unwrap(kek, got.pboc_mk[i].tobytes())[:16] == ac
        f = card["card_no"][:8].encode()
        irk = ssse.diversify(bytes.fromhex("D9F6B328650197EB8B13C333E8EFCDBF"), "SM4", [f])[0]
        assert sample_keystore.unwrap(kek, got.ssse[i, :16].tobytes()) == irk  # key 01 = IRK
        pin = card["pin"] or seeded_pin(SEED, card["ssn"], 6)
        assert sample_keystore.unwrap(kek, got.pins[i].tobytes()) == pin_block(pin)
    assert pin_block("1234") == bytes.fromhex("241234FFFFFFFFFF")


def prep(tmp: Path, store: SoftwareKeyStore, profile: Any = PROFILE, **kw: Any) -> Any:
    opts = PrepOptions(batch_id=kw.pop("batch_id", "B1"), created=1767225600, **kw)
    return prepare(
        tmp / "batch.csv",
        profile,
        store,
        lambda: SoftwareKeyStore.load(store.location.removeprefix("file:")),
        tmp / kw.get("out", "out.cppf"),
        tmp / "rejects.csv",
        opts,
    )


def test_deterministic_across_workers_and_chunks(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    import shutil

    from cardperso.prep.oda_run import ensure_pool

    make_batch(tmp_path / "batch.csv", 120, photos=4, errors=8)
    # the reference product has ODA: both runs get the same ICC keys from two copies of a pool
    # (a pool never hands a key out twice)
    ensure_pool(PROFILE, sample_keystore, lambda: sample_keystore, tmp_path / "pool", 130)
    shutil.copytree(tmp_path / "pool", tmp_path / "pool2")
    s1 = prep(tmp_path, sample_keystore, icc_pool=str(tmp_path / "pool"))
    first = (tmp_path / "out.cppf").read_bytes()
    s2 = prep(tmp_path, sample_keystore, workers=2, chunk_size=7, icc_pool=str(tmp_path / "pool2"))
    assert (tmp_path / "out.cppf").read_bytes() == first
    assert (
        (s1.read, s1.prepared, s1.rejected) == (s2.read, s2.prepared, s2.rejected) == (128, 120, 8)
    )
    result = verify(tmp_path / "out.cppf", sample_keystore)
    assert result.records == 120 and result.header.read_count == 128


@pytest.mark.parametrize("profile", [PROFILE, SSC2, TEMPORARY], ids=lambda p: p.name)
def test_every_profile_prepares_and_verifies(
    tmp_path: Path, sample_keystore: SoftwareKeyStore, profile: Any
) -> None:
    make_batch(tmp_path / "batch.csv", 30, photos=3)
    summary = prep(tmp_path, sample_keystore, profile)
    assert (summary.prepared, summary.rejected) == (30, 0)
    verify(tmp_path / "out.cppf", sample_keystore)
    recs = list(iter_records(tmp_path / "out.cppf", sample_keystore))
    apps = recs[0][1].apps
    assert len(apps) == (1 if profile is TEMPORARY else 2)
    dgis = dict(parse_dgis(apps[0].dgis))
    assert (0x0D01 in dgis) == (profile.generation == 3)
    assert dgis[0x9F0C][0] == (3 if profile.ssse.algorithm == "SM4" else 1)


def _decode_card(body_apps: Any, store: SoftwareKeyStore) -> dict[str, Any]:
    ssse_d = dict(parse_dgis(body_apps[0].dgis))
    pboc_d = dict(parse_dgis(body_apps[1].dgis))
    ef05 = EF05.decode(b"".join(ssse_d[0x0500 | r] for r in range(1, 8)))
    ef06 = EF06.decode(b"".join(ssse_d[0x0600 | r] for r in range(1, 8)))
    r0301 = tlv.to_dict(tlv.parse_one(pboc_d[0x0301]))
    r0302 = tlv.to_dict(tlv.parse_one(pboc_d[0x0302]))
    ec = tlv.to_dict(tlv.parse(pboc_d[0x0D01]))
    return {
        "ssn": ef06.social_security_number,
        "name": ef06.name,
        "gender": ef06.gender,
        "nation": ef06.nation,
        "birth_date": ef06.birth_date,
        "birth_place": ef06.birth_place,
        "card_no": ef05.card_number,
        "issue_date": ef05.issue_date,
        "expiry_date": ef05.expiry_date,
        "region": ef05.card_identification_code[:3].hex(),
        "pan": r0301[0x5A].hex().upper().rstrip("F"),
        "pan_seq": r0302[0x5F34].hex(),
        "name_9f0b": r0302[0x9F0B].decode("gbk"),
        "ssn_9f61": r0302[0x9F61].decode("ascii"),
        "ec_limit": str(int(ec[0x9F77].hex())),
        "ec_balance": str(int(ec[0x9F79].hex())),
        "kcvs": pboc_d[0x9000],
        "mk": store.unwrap("transport-kek", pboc_d[0x8000]),
    }


_NAME_CHARS = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超·"


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, str]:
    region = draw(st.sampled_from(["110101", "360426", "440305", "650102"]))
    birth = draw(
        st.dates(
            min_value=__import__("datetime").date(1930, 1, 1),
            max_value=__import__("datetime").date(2010, 12, 31),
        )
    )
    male = draw(st.booleans())
    seq = draw(st.integers(0, 99))
    digit = draw(st.sampled_from("13579" if male else "02468"))
    body17 = f"{region}{birth:%Y%m%d}{seq:02d}{digit}"
    card_body = draw(st.from_regex(r"[0-9A-Z]{8}", fullmatch=True))
    pan_body = draw(st.from_regex(r"622848[0-9]{9,12}", fullmatch=True))  # pboc.oda.issuer_id
    surname = draw(st.sampled_from(_NAME_CHARS[:-1]))
    given = draw(st.text(alphabet=_NAME_CHARS[:-1], min_size=1, max_size=24))
    limit = draw(st.integers(0, 100000))
    return {
        "ssn": body17 + resident_id_check_char(body17),
        "name": surname + given,
        "gender": "1" if male else "2",
        "nation": draw(st.sampled_from(["01", "02", "56", "97"])),
        "birth_date": f"{birth:%Y%m%d}",
        "birth_place": region,
        "region": region,
        "card_no": card_body + card_number_check_char(card_body),
        "issue_date": "20260115",
        "expiry_date": "20360115",
        "photo": "photos/p0000.jpg",
        "bank_code": "103",
        "pan": pan_body + luhn_check_digit(pan_body),
        "pan_seq": f"{draw(st.integers(0, 99)):02d}",
        "pin": "",
        "ec_balance": str(draw(st.integers(0, limit))),
        "ec_limit": str(limit),
        "ec_single_limit": str(draw(st.integers(0, limit))),
        "ec_reset_threshold": str(draw(st.integers(0, limit))),
        "application_type": "batch",
        "accepted_date": "20260110",
    }


@pytest.fixture(scope="module")
def round_trip_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Preparer]:
    tmp = tmp_path_factory.mktemp("rt")
    (tmp / "photos").mkdir()
    (tmp / "photos" / "p0000.jpg").write_bytes(make_photo(random.Random(3)))
    store = SoftwareKeyStore.load(Path(__file__).resolve().parents[1] / "keys-sample" / "keys.json")
    batch = batch_keys(store, "transport-kek", "RT", PROFILE.digest)
    return tmp, Preparer(PROFILE, store, str(tmp), SEED, batch)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(recs=st.lists(valid_records(), min_size=1, max_size=4))
def test_valid_records_round_trip(
    round_trip_env: tuple[Path, Preparer], recs: list[dict[str, str]]
) -> None:
    """Prepared chip data decode back to the input values (hypothesis-generated records)."""
    from cardperso.layouts.persofile import PERSO_RECORD, PERSO_RECORD_BODY
    from cardperso.prep.container import open_body
    from cardperso.prep.input import Chunk

    _tmp, preparer = round_trip_env
    data = "".join(",".join(r[c] for c in COLUMNS) + "\n" for r in recs).encode()
    result = preparer.process(Chunk(0, "csv", COLUMNS, data, 2))
    assert result.rejects == []
    start = 0
    store = preparer.keys.store if preparer.keys else None
    assert store is not None
    for i, end in enumerate(result.ends):
        frame = PERSO_RECORD.decode(result.frames[start:end])
        start = end
        assert frame.line == i + 2
        sealed = PERSO_RECORD_BODY.decode(frame.body)
        assert sealed.ssn_masked == recs[i]["ssn"][:6] + "********" + recs[i]["ssn"][-4:]
        assert recs[i]["ssn"].encode() not in frame.body  # personal data sealed
        assert preparer.batch is not None
        body = open_body(preparer.batch, frame.body)
        got = _decode_card(body.apps, store)  # type: ignore[arg-type]
        rec = recs[i]
        for key in ("ssn", "name", "gender", "nation", "birth_date", "birth_place", "card_no"):
            assert got[key] == rec[key], key
        for key in (
            "issue_date",
            "expiry_date",
            "region",
            "pan",
            "pan_seq",
            "ec_limit",
            "ec_balance",
        ):
            assert got[key] == rec[key], key
        assert got["name_9f0b"] == rec["name"] and got["ssn_9f61"] == rec["ssn"]
        mk = got["mk"]
        assert got["kcvs"] == b"".join(kcv("3DES", mk[j : j + 16]) for j in (0, 16, 32))
        assert (body.card_no, body.ssn, body.pan) == (rec["card_no"], rec["ssn"], rec["pan"])


def test_cli_prep_verify_show_and_exit_codes(tmp_path: Path, sample_keystore_path: Path) -> None:
    from cardperso.cli.main import _register, cli

    _register()
    make_batch(tmp_path / "batch.csv", 20, photos=2, errors=3)
    runner = CliRunner()
    out = tmp_path / "b.cppf"
    args = ["prep", str(tmp_path / "batch.csv"), "-p", "ssc3-pboc", "-k", str(sample_keystore_path)]
    args += ["-o", str(out), "-r", str(tmp_path / "rej.csv"), "--created", "2026-01-15T00:00:00Z"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 1, res.output  # some records rejected
    assert "read 23, prepared 20, rejected 3" in res.output
    res = runner.invoke(cli, ["perso-file", "verify", str(out), "-k", str(sample_keystore_path)])
    assert res.exit_code == 0 and "OK" in res.output and "20 records" in res.output
    res = runner.invoke(cli, ["perso-file", "show", str(out), "--json"])
    assert res.exit_code == 0
    plain = [json.loads(x) for x in res.output.splitlines()]
    assert len(plain) == 21 and set(plain[1]) == {"seq", "line", "card_no", "ssn"}
    assert "*" in plain[1]["ssn"]
    show = ["perso-file", "show", str(out), "--json", "-k", str(sample_keystore_path)]
    res = runner.invoke(cli, show)
    assert res.exit_code == 0
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert lines[0]["header"]["records"] == 20 and len(lines) == 21
    first = lines[1]
    assert (
        "*" in first["ssn"] and "*" in first["pan"] and "8000" in first["dgis"]["A000000333010101"]
    )
    # never secrets: no wrapped key, no PIN block, no full identity number in the output
    recs = list(iter_records(out, SoftwareKeyStore.load(sample_keystore_path)))
    for _seq, rec in recs:
        assert rec.ssn not in res.output and rec.pan not in res.output
        pboc = dict(parse_dgis(rec.apps[1].dgis))
        assert pboc[0x8000].hex() not in res.output.lower()
    res = runner.invoke(cli, ["validate", str(tmp_path / "batch.csv"), "-p", "ssc3-pboc"])
    assert res.exit_code == 1 and "read 23, valid 20, rejected 3" in res.output


def test_workers_must_be_positive(tmp_path: Path, sample_keystore: SoftwareKeyStore) -> None:
    from cardperso.errors import UsageError

    make_batch(tmp_path / "batch.csv", 2, photos=1)
    with pytest.raises(UsageError):
        prep(tmp_path, sample_keystore, workers=0)


def test_pin_policy_and_seed(sample_keystore: SoftwareKeyStore) -> None:
    assert seeded_pin(SEED, "360426199101010071", 6) == seeded_pin(SEED, "360426199101010071", 6)
    assert seeded_pin(SEED, "360426199101010071", 6) != seeded_pin(
        b"x" * 32, "360426199101010071", 6
    )
    assert len(seeded_pin(SEED, "110101199001011234", 6)) == 6
    assert cp.BLOCK_SIZE["3DES"] == 8


_ANY = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rec=valid_records(),
    changes=st.dictionaries(st.sampled_from(COLUMNS), _ANY, max_size=4),
)
def test_corrupted_records_never_crash_preparation(
    round_trip_env: tuple[Path, Preparer], rec: dict[str, str], changes: dict[str, str]
) -> None:
    """Any values in any fields, through the whole preparation: every record read is either
    framed or rejected with a field and a reason."""
    import csv
    import io

    from cardperso.prep.input import Chunk

    _tmp, preparer = round_trip_env
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([(rec | changes)[c] for c in COLUMNS])
    result = preparer.process(Chunk(0, "csv", COLUMNS, buf.getvalue().encode(), 2))
    assert result.read == len(result.ends) + len(result.rejects)
    for _line, field, reason, _masked, _end in result.rejects:
        assert field and reason
