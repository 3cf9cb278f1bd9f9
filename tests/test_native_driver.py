"""The native-COS driver (cardperso.chip.native) personalizes the SSSE on the native virtual
chip; the SSSE reads back through a social-security terminal's authenticated reads exactly like
the one a GP chip gets (issue 12 item 3)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.card.native import NativeCard
from cardperso.card.vcard import VirtualCard
from cardperso.chip.drivers import load_drivers
from cardperso.chip.model import ChipFailure, ChipPlan
from cardperso.chip.native import transport_factor
from cardperso.chip.plan import card_data, chip_plan
from cardperso.chip.transport import Flow, drive
from cardperso.codec.apdu import CommandAPDU
from cardperso.crypto import ecb_encrypt, kcv, random_bytes
from cardperso.crypto.ssse import diversify_one
from cardperso.devices.pcsc import PcscTransport
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.container import iter_records, read_header
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from fixtures_pcsc import LabSlot

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KEYS = ROOT / "keys-sample" / "keys.json"
NATIVE_SM4 = bytes.fromhex("7B2C9D41E05A36F8C1D2E3F405162738")
NATIVE_3DES = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")


def native_store(tmp: Path) -> Path:
    """The sample store plus the card vendor's native transport masters."""
    doc = json.loads(SAMPLE_KEYS.read_text())
    for name, algorithm, value in (("native-transport", "SM4", NATIVE_SM4),
                                   ("native-transport-3des", "3DES", NATIVE_3DES)):  # fmt: skip
        doc["keys"][name] = {"algorithm": algorithm, "value": value.hex().upper(),
                             "kcv": kcv(algorithm, value).hex().upper(), "purpose": "test"}  # fmt: skip
    path = tmp / "keys.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("native")
    make_batch(tmp / "batch.csv", 3, seed=21)
    keys = native_store(tmp)
    out = tmp / "batch.perso"
    summary = prepare(
        tmp / "batch.csv", load_profile("ssc3-temporary"), SoftwareKeyStore.load(keys),
        functools.partial(SoftwareKeyStore.load, keys), out, tmp / "rejects.csv",
        PrepOptions(batch_id="NAT1", created=1_700_000_000),
    )  # fmt: skip
    assert summary.prepared == 3
    return out, keys


def _card(prepared: tuple[Path, Path], index: int = 0, profile: str = "ssc3-temporary") -> tuple:  # type: ignore[type-arg]
    path, keys = prepared
    store = SoftwareKeyStore.load(keys)
    with path.open("rb") as fh:
        header, _ = read_header(fh)
    bodies = [b for _, b in iter_records(path, store)]
    plan = chip_plan(load_profile(profile), header)
    return card_data(header, bodies[index], index), plan, store


def blank_native(path: Path, algorithm: str = "SM4", *, wrong: bool = False) -> NativeCard:
    serial = random_bytes(4)
    master = NATIVE_SM4 if algorithm == "SM4" else NATIVE_3DES
    key = diversify_one(master, algorithm, transport_factor(serial))
    if wrong:
        key = bytes(b ^ 0x5A for b in key)
    return NativeCard.create_blank(path, serial=serial, algorithm=algorithm, transport_key=key)


def terminal_reads(plan: ChipPlan, irk: bytes, rk: bytes) -> Flow[dict[tuple[int, int], bytes]]:
    """A social-security terminal: SELECT SSSE, INTERNAL AUTHENTICATE (IRK), EXTERNAL
    AUTHENTICATE (read key 0A) and READ RECORD of every record of EF05, EF06, EF0D."""
    algorithm = plan.ssse_algorithm
    answer = yield CommandAPDU(0x00, 0xA4, 0x04, 0x00, SSSE_NAME, le=256).to_bytes()
    assert answer[-2:] == b"\x90\x00"
    factor, rnd = random_bytes(8), random_bytes(8)
    answer = yield CommandAPDU(0x00, 0x88, 0x00, 0x01, factor + rnd, le=256).to_bytes()
    assert answer[:16] == ecb_encrypt(
        algorithm, diversify_one(irk, algorithm, factor), rnd + bytes(8)
    )
    challenge = (yield CommandAPDU(0x00, 0x84, 0x00, 0x00, le=8).to_bytes())[:8]
    cryptogram = ecb_encrypt(algorithm, rk, challenge + bytes(8))
    assert (yield CommandAPDU(0x00, 0x82, 0x00, 0x0A, cryptogram).to_bytes()) == b"\x90\x00"
    out = {}
    for sfi in (0x05, 0x06, 0x0D):
        for rec in range(1, 16):
            got = yield CommandAPDU(0x00, 0xB2, rec, sfi << 3 | 4, le=256).to_bytes()
            if got[-2:] == b"\x90\x00":
                out[(sfi, rec)] = got[:-2]
    return out


def _keys_of(data: object, plan: ChipPlan, store: SoftwareKeyStore) -> tuple[bytes, bytes]:
    app = data.apps[0]  # type: ignore[attr-defined]
    secret = dict((d, v) for d, v in app.dgis if d in app.secret)
    return store.unwrap(plan.kek, secret[0x8F01])[:16], store.unwrap(plan.kek, secret[0x8F0A])[:16]


def _counting(card: NativeCard | VirtualCard) -> tuple[list[bytes], Callable[[bytes], bytes]]:
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(apdu)
        return card.transmit(apdu)

    return sent, transmit


def test_the_native_chip_is_personalized_and_reads_back_like_a_gp_chip(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    data, plan, store = _card(prepared)
    drivers = load_drivers()
    native = blank_native(tmp_path / "native.json")
    atr = native.power_on()
    driver = drivers.choose(atr)
    assert driver.chip.name == "cardperso-fmcos-sm4"
    sent, transmit = _counting(native)
    result = drive(driver.personalize(data, plan, store, atr), transmit)
    assert result.chip_serial == native.serial and result.card_id[8:12] == native.serial
    assert result.checks == ("ssse-records",) and result.apdus == len(sent)
    instructions = [a[1] for a in sent]
    assert instructions.count(0xE0) == 6, "DF, key file, EF05, EF06, EF0D, end of creation"
    assert instructions.count(0xD4) == 8, "7 keys and the PIN"
    assert all(a[0] == 0x84 for a in sent if a[1] == 0xD4), "keys only enciphered and MAC'd"
    assert all(a[0] == 0x04 for a in sent if a[1] == 0xDC), "records under line protection"
    df = native.state.mf.dfs[0]
    assert df.name == SSSE_NAME and df.ended and len(df.keys) == 8
    assert native.state.mf.keys[0].fourth == 0x55, "the transport key was never refused"

    gp = VirtualCard.create_blank(tmp_path / "gp.json")
    gp_atr = gp.power_on()
    gp_driver = drivers.choose(gp_atr)
    assert gp_driver.cos == "gp"
    gp_result = drive(gp_driver.personalize(data, plan, store, gp_atr), gp.transmit)
    irk, rk = _keys_of(data, plan, store)
    native.power_off(), native.power_on()  # type: ignore[func-returns-value]
    gp.power_off(), gp.power_on()  # type: ignore[func-returns-value]
    read_native = drive(terminal_reads(plan, irk, rk), native.transmit)
    read_gp = drive(terminal_reads(plan, irk, rk), gp.transmit)
    assert len(read_native) == 16
    card_id_native, card_id_gp = read_native.pop((5, 1)), read_gp.pop((5, 1))
    assert read_native == read_gp, "every record but the card id reads back identically"
    # the card id carries each chip's own serial, the rest of it is the same
    assert card_id_native[2:] == result.card_id and card_id_gp[2:] == gp_result.card_id
    assert card_id_native[:10] == card_id_gp[:10]


@pytest.mark.parametrize(
    ("case", "step"),
    [
        ("wrong-transport-key", "EXTERNAL AUTHENTICATE transport key"),
        ("3des-chip", "ATR"),
        ("pboc-product", "ATR"),
    ],
)
def test_refusals_spend_nothing_they_need_not(
    prepared: tuple[Path, Path], tmp_path: Path, case: str, step: str
) -> None:
    data, plan, store = _card(prepared)
    if case == "pboc-product":
        plan = chip_plan(load_profile("ssc3-pboc"), read_header(prepared[0].open("rb"))[0])
        data = data.__class__(data.index, data.card_no, data.pan, data.psn,
                              (*data.apps, data.apps[0].__class__("PBOC", bytes.fromhex("A000000333010101"), (), frozenset())))  # fmt: skip
    algorithm = "3DES" if case == "3des-chip" else "SM4"
    card = blank_native(tmp_path / "n.json", algorithm, wrong=case == "wrong-transport-key")
    atr = card.power_on()
    before = card.path.read_bytes()
    sent, transmit = _counting(card)
    with pytest.raises(ChipFailure) as failure:
        drive(load_drivers().choose(atr).personalize(data, plan, store, atr), transmit)
    assert failure.value.step == step
    if case == "wrong-transport-key":
        assert failure.value.auth_failure
        assert [a[1] for a in sent] == [0xA4, 0x84, 0x82], "refused once, never retried"
        assert card.state.mf.dfs == [] and card.state.mf.keys[0].fourth == 0x54
    else:
        assert sent == [], "refused before any command"
        assert card.path.read_bytes() == before


def test_a_native_chip_over_pcscd_and_vpcd(
    prepared: tuple[Path, Path], tmp_path: Path, pcsc_slot: LabSlot
) -> None:
    data, plan, store = _card(prepared, 1)
    card = blank_native(tmp_path / "n.json")
    pcsc_slot.insert(card)
    with PcscTransport(pcsc_slot.name) as t:
        driver = load_drivers().choose(t.atr)
        result = drive(driver.personalize(data, plan, store, t.atr), t.transmit)
    pcsc_slot.remove()
    assert result.checks == ("ssse-records",) and result.chip_serial == card.serial
    made = NativeCard.load(card.path)
    assert made.state.mf.dfs[0].ended
    records = {ef.sfi: ef.records for ef in made.state.mf.dfs[0].efs}
    assert records[5][6] == b"\x07\x09" + data.card_no.encode("ascii")


def test_the_apdu_trace_redacts_native_keys_and_records() -> None:
    from cardperso.devices.pcsc import redact_command

    write_key = bytes.fromhex("84D4010A19") + bytes(range(0x19))
    update = bytes.fromhex("04DC012C0D") + b"\x08\x07" + b"1101011" + bytes(4)
    assert redact_command(write_key) == "84D4010A19 <25 bytes redacted>"
    assert redact_command(update) == "04DC012C0D <13 bytes redacted>"
