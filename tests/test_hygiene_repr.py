"""Secrets hygiene (issue 5): ``repr``/``str`` of objects that carry keys, PINs or personal data,
and the messages of the errors that verification raises, show none of them.

Each object is built with recognisable values (fresh random keys, a PIN, an identity number);
its ``repr`` and ``str`` must contain neither the values' hex (either case) nor the identity
number. Values an operator needs (names, check values, lengths, the card number) may show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.card.state import KeySet, PbocData, SsseData
from cardperso.chip.model import CardApp, CardData
from cardperso.crypto import gp, kcv, random_bytes
from cardperso.crypto import primitives as cp
from cardperso.crypto.emv import verify_application_cryptogram
from cardperso.crypto.primitives import SecretKey
from cardperso.errors import CardPersoError, CryptogramMismatch, KeyStoreError, MacMismatch
from cardperso.keystore.base import DerivedKey, GpCardKeys
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from cardperso.layouts.persofile import PersoApp, PersoRecordBody
from cardperso.prep.input import Chunk
from cardperso.prep.keys import pin_block
from cardperso.prep.pipeline import PrepOptions
from cardperso.protocol.storedata import DgiItem

K1, K2, K3 = (cp.odd_parity(random_bytes(16)) for _ in range(3))
PIN = "739104"
BLOCK = pin_block(PIN)
SSN = "11010119900307663X"  # GB 11643 example form (synthetic: region 110101, 1990-03-07)
SECRETS = {"K1": K1, "K2": K2, "K3": K3, "PIN block": BLOCK}


def leaks(text: str) -> list[str]:
    found = [
        label
        for label, value in SECRETS.items()
        if value.hex() in text.lower()
        or value.hex() in text.lower().replace(" ", "")
        or repr(value)[2:-1] in text  # a bytes repr: b'\x8a%*\xa7...'
    ]
    if PIN in text:
        found.append("PIN")
    if SSN.lower() in text.lower():
        found.append("identity number")
    if SSN.encode().hex() in text.lower():
        found.append("identity number (hex)")
    return found


def _ef06_record() -> bytes:
    return b"\x08\x12" + SSN.encode()


OBJECTS: dict[str, Callable[[], object]] = {
    "SecretKey": lambda: SecretKey("3DES", K1, "pboc-imk-ac"),
    "DerivedKey (clear)": lambda: DerivedKey("3DES", kcv("3DES", K1), None, K1),
    "GpCardKeys": lambda: GpCardKeys(
        *(DerivedKey("3DES", kcv("3DES", k), None, k) for k in (K1, K2, K3))
    ),
    "StaticKeys": lambda: gp.StaticKeys(K1, K2, K3),
    "Scp02SessionKeys": lambda: gp.scp02_session_keys(gp.StaticKeys(K1, K2, K3), b"\x00\x01"),
    "Scp03SessionKeys": lambda: gp.scp03_session_keys(gp.StaticKeys(K1, K2, K3, "AES"), bytes(16)),
    "DgiItem (secret)": lambda: DgiItem(0x8000, K1 + K2 + K3, True),
    "DgiItem (PIN)": lambda: DgiItem(0x8010, BLOCK, True),
    "DgiItem (EF06)": lambda: DgiItem(0x0601, _ef06_record()),
    "CardApp": lambda: CardApp(
        "ssse", b"\xa0" * 8, ((0x0601, _ef06_record()), (0x8F01, K1)), frozenset({0x8F01})
    ),
    "CardData": lambda: CardData(
        0,
        "010000004",
        "6228480000000000000",
        "01",
        (CardApp("pboc", b"\xa0" * 8, ((0x8000, K1 + K2 + K3),), frozenset({0x8000})),),
    ),
    "KeySet (virtual card)": lambda: KeySet(0x20, K1, K2, K3),
    "SsseData (virtual card)": lambda: SsseData(
        3, {"0601": _ef06_record()}, {"8F01": K1}, BLOCK, 3, 3
    ),
    "PbocData (virtual card)": lambda: PbocData(
        {"0302": b"\x9f\x61\x12" + SSN.encode()}, K1, K2, K3, BLOCK
    ),
    "PrepOptions (PIN seed)": lambda: PrepOptions("b", 0, pin_seed=K1),
    "Chunk (raw input records)": lambda: Chunk(
        0, "csv", ("ssn", "pin"), f"{SSN},{PIN}\n".encode(), 2
    ),
    "PersoRecordBody": lambda: PersoRecordBody(
        1,
        "010000004",
        SSN,
        "6228480000000000000",
        bytes(16),
        (PersoApp(b"\xa0" * 8, _ef06_record()),),
        f"name\x1f{SSN}",
        "",
        "",
        "",
    ),
}


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_repr_and_str_hide_secrets_and_identity_numbers(name: str) -> None:
    obj = OBJECTS[name]()
    shown = repr(obj) + "\n" + str(obj)
    assert not leaks(shown), f"{name}: {', '.join(leaks(shown))} in {shown[:300]!r}"


def test_the_leak_check_sees_what_it_must() -> None:
    assert leaks(f"x {K1.hex().upper()} y") == ["K1"]
    assert leaks(" ".join(f"{b:02x}" for b in BLOCK)) == ["PIN block"]
    assert leaks(repr(_ef06_record())) == ["identity number"]
    assert leaks(f"keys={[K2]!r}") == ["K2"]
    assert leaks(_ef06_record().hex().upper()) == ["identity number (hex)"]
    assert leaks("110101********663X kcv 1A2B3C") == []


def _messages(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n{exc.args!r}"


def test_verification_errors_name_what_failed_never_the_values() -> None:
    with pytest.raises(MacMismatch) as mac:
        cp.verify_mac(K1[:8], K2[:8], "C-MAC")
    with pytest.raises(CryptogramMismatch) as ac:
        verify_application_cryptogram(K1, K2 + K3, K3[:8])
    for exc in (mac.value, ac.value):
        assert not leaks(_messages(exc)), _messages(exc)


def test_key_store_errors_never_show_key_values(tmp_path: Path) -> None:
    """A store file whose value does not match its check value, a bad length, bad hex."""
    generate_file(tmp_path / "keys.json")
    doc = json.loads((tmp_path / "keys.json").read_text())
    entry = doc["keys"]["pboc-imk-ac"]
    for label, change in (
        ("wrong kcv", {"value": K1.hex(), "kcv": "000000"}),
        ("bad length", {"value": K1.hex() + "00"}),
        ("bad hex", {"value": K1.hex()[:-1] + "G"}),
    ):
        broken = dict(doc, keys=dict(doc["keys"], **{"pboc-imk-ac": dict(entry, **change)}))
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(KeyStoreError) as err:
            SoftwareKeyStore.load(path)
        text = _messages(err.value)
        assert "pboc-imk-ac" in text and not leaks(text), (label, text)
        assert K1.hex()[:-1].lower() not in text.lower(), (label, text)


def test_unwrap_with_the_wrong_kek_says_so_without_values(tmp_path: Path) -> None:
    store = generate_file(tmp_path / "keys.json")
    from cardperso.keystore.base import DerivedKey as _D

    wrapped = store.wrap("transport-kek", K1)
    wrong = _D("3DES", kcv("3DES", K1), "transport-kek-aes", wrapped)
    with pytest.raises(CardPersoError) as err:
        store.unwrap_key(wrong, "per-card AC")
    assert not leaks(_messages(err.value)), _messages(err.value)
