"""Per-card ODA data for prep (issue 13, prep/oda.py): the ICC certificate 9F46 (+9F48, 9F47,
9F49), 93 for SDA, and the private-key DGIs 8201-8205 from the ICC key pool.

Outside references:
* the certificates are opened by OpenSSL's raw public operation (``openssl pkeyutl -encrypt
  -pubin``, rsa_padding_mode:none, tests/openssl_rsa.py) and checked field by field against EMV
  4.3 Book 2 table 14 (ICC certificate, format 04) and table 7 (signed static data, format 03);
  the hash is recomputed here with hashlib over the fields, the remainder, the exponent and the
  static data built by hand from EMV 4.3 Book 3 10.3 (the template-70 values of the records the
  AFL marks for ODA, SFI 1-10, then the AIP because 9F4A = 82);
* the private-key DGIs are decrypted by ``openssl enc -d`` (des-ede-ecb, aes-128-ecb) under the
  transport KEK, unpadded (``80 00…``) and must be the CRT parts, in the order of
  /work/shared/reference/pboc-conformance.md section 4, of the key 9F46 certifies.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from pathlib import Path

import pytest

from cardperso.cli.keys import open_store
from cardperso.codec.dgi import parse_dgis
from cardperso.codec.tlv import parse_one, to_dict
from cardperso.crypto.primitives import unpad_method2
from cardperso.crypto.rsa import RsaKey, rsa_generate, rsa_sign_raw
from cardperso.errors import DataError, SecurityError, UsageError
from cardperso.keystore.pool import IccKeyPool, PoolKeys
from cardperso.keystore.poolgen import fill, open_or_create
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts.emv_cert import PublicKey, recover_icc_key, verify_ssad
from cardperso.prep.oda import OdaChunk, OdaSetup, gpo_aip_afl, icc_dgis, static_data_of
from openssl_cli import dec
from openssl_rsa import public_pem, recover_with

AIP = bytes.fromhex("7C00")
#: SFI 1 rec 1 (ODA), SFI 2 recs 1-2 (rec 1 ODA; rec 2 carries 9F46), SFI 3 recs 1-2 (rec 1
#: ODA; rec 2 carries 93).
AFL = bytes.fromhex("080101011001020118010201")


def _record(*tlvs: bytes) -> bytes:
    body = b"".join(tlvs)
    return bytes([0x70, len(body)]) + body


def card_records(pan: str, name: bytes) -> dict[int, bytes]:
    """A card's three ODA records, each a template 70 (values hand-made)."""
    return {
        0x0101: _record(bytes.fromhex("5713") + bytes.fromhex(pan + "D28122010000000000000F")[:19]),
        0x0201: _record(b"\x5f\x20" + bytes([len(name)]) + name, bytes.fromhex("9F0802 0030")),
        0x0301: _record(bytes.fromhex("5A08" + pan + "5F2403281231")),
    }


def expected_static(records: dict[int, bytes]) -> bytes:
    """EMV Book 3 10.3 by hand: SFI 1-10 records without their 70 tag and length, then 82."""
    return b"".join(records[d][2:] for d in (0x0101, 0x0201, 0x0301)) + AIP


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("oda")
    store_path = root / "keys.json"
    # transport-kek 3DES (the published sample's), transport-kek-aes AES: both wraps are tested
    store = SoftwareKeyStore.generate(test_keys=True, kek_algorithm="3DES")
    store.save(store_path)
    pool = open_or_create(root / "pool", store, bits=1024, exponent=3, kek="transport-kek")
    fill(pool, functools.partial(open_store, str(store_path)), count=12, workers=1)
    kek_values = {
        n: bytes.fromhex(e["value"])
        for n, e in json.loads(store_path.read_text())["keys"].items()
        if n.startswith("transport-kek")
    }
    return {"store": store, "pool": pool, "kek": kek_values, "root": root}


def _setup(issuer: RsaKey, kek: str, *, sda: bool = False) -> OdaSetup:
    return OdaSetup.make(
        issuer_sign=functools.partial(rsa_sign_raw, issuer),
        issuer_length=len(issuer.modulus),
        afl=AFL,
        aip=AIP,
        cert_dgi=0x0202,
        ssad_dgi=0x0302 if sda else None,
        transport_kek=kek,
    )


@pytest.mark.parametrize("issuer_bits", [1152, 1408])
def test_icc_certificate_opens_with_openssl_and_hashes_the_afl_records_and_aip(
    env: dict[str, object], issuer_bits: int, tmp_path: Path
) -> None:
    store, pool = env["store"], env["pool"]
    assert isinstance(store, SoftwareKeyStore) and isinstance(pool, IccKeyPool)
    issuer = rsa_generate(issuer_bits, 3)
    setup = _setup(issuer, "transport-kek", sda=True)
    pans = ["6231000000000017", "6231000000000025"]
    recs = [card_records(pans[0], b"ZHANG/SAN"), card_records(pans[1], b"LI/SI")]
    keys = pool.reserve(2).read(0, 2)
    stream = b"".join(bytes.fromhex(f"{d:04X}") + bytes([len(v)]) + v for d, v in recs[0].items())
    static = [static_data_of(setup, stream), static_data_of(setup, recs[1])]
    assert static == [expected_static(r) for r in recs]
    out = icc_dgis(setup, keys, static, pans, ["2812", "2901"], store)
    pem = public_pem(issuer.modulus, 3, tmp_path)
    for i, blob in enumerate(out):
        dgis = dict(parse_dgis(blob))
        assert list(dgis) == [0x0202, 0x0302, 0x8201, 0x8202, 0x8203, 0x8204, 0x8205]
        rec = to_dict(parse_one(dgis[0x0202]).children)
        cert, exp, rem = rec[0x9F46], rec[0x9F47], rec.get(0x9F48, b"")
        assert exp == b"\x03" and rec[0x9F49] == bytes.fromhex("9F3704")
        block = recover_with(pem, cert)  # OpenSSL, not our code
        # Book 2 table 14: 6A 04 PAN(10) MMYY serial(3) 01 01 len(N_IC) len(e) key hash BC
        assert block[:2] == b"\x6a\x04" and block[-1] == 0xBC
        assert block[2:12] == bytes.fromhex(pans[i] + "FFFF")
        assert block[12:14] == bytes.fromhex(["1228", "0129"][i])
        assert block[14:17] == keys.index[i].to_bytes(3, "big")
        assert block[17:21] == bytes([1, 1, 128, 1])
        room = len(issuer.modulus) - 42
        key = (block[21 : 21 + room] + rem)[:128]
        assert key == keys.moduli[i]
        assert len(rem) == max(0, 128 - room)  # 1152-bit issuer: 26 bytes in 9F48
        hashed = block[1:-21] + rem + exp + expected_static(recs[i])
        assert block[-21:-1] == hashlib.sha1(hashed).digest()
        # the terminal kernel's recovery (H13a's emv_cert) agrees
        issuer_pk = PublicKey(issuer.modulus, 3)
        today = dt.date(2026, 12, 1)
        icc = recover_icc_key(
            issuer_pk, cert, rem, exp, pan=bytes.fromhex(pans[i]), static=static[i], today=today
        )
        assert icc.modulus == keys.moduli[i]
        tampered = bytearray(static[i])
        tampered[3] ^= 1
        with pytest.raises(SecurityError, match="hash"):
            recover_icc_key(
                issuer_pk, cert, rem, exp, pan=bytes.fromhex(pans[i]), static=bytes(tampered),
                today=today,
            )  # fmt: skip
        # 93 (Book 2 table 7): 6A 03 01 DAC BB.. hash(fields ‖ static) BC
        ssad = to_dict(parse_one(dgis[0x0302]).children)[0x93]
        sblock = recover_with(pem, ssad)
        assert sblock[:5] == bytes.fromhex("6A0301DAC1") and sblock[-1] == 0xBC
        assert set(sblock[5:-21]) == {0xBB}
        assert sblock[-21:-1] == hashlib.sha1(sblock[1:-21] + expected_static(recs[i])).digest()
        assert verify_ssad(issuer_pk, ssad, static[i]) == bytes.fromhex("DAC1")


def _crt_from_dgis(blob: bytes, cipher: str, kek: bytes) -> list[bytes]:
    dgis = dict(parse_dgis(blob))
    return [unpad_method2(dec(cipher, kek, dgis[d])) for d in range(0x8201, 0x8206)]


@pytest.mark.parametrize(
    ("kek", "cipher", "part_len"),
    [("transport-kek", "des-ede-ecb", 72), ("transport-kek-aes", "aes-128-ecb", 80)],
)
def test_private_key_dgis_decrypt_to_the_certified_key(
    env: dict[str, object], kek: str, cipher: str, part_len: int, tmp_path: Path
) -> None:
    store, pool, keks = env["store"], env["pool"], env["kek"]
    assert isinstance(store, SoftwareKeyStore) and isinstance(pool, IccKeyPool)
    assert isinstance(keks, dict)
    issuer = rsa_generate(1408, 3)
    setup = _setup(issuer, kek)
    pan = "6231000000000033"
    recs = card_records(pan, b"WANG/WU")
    keys = pool.reserve(1).read(0, 1)
    (blob,) = icc_dgis(setup, keys, [static_data_of(setup, recs)], [pan], ["2812"], store)
    dgis = dict(parse_dgis(blob))
    assert {len(dgis[d]) for d in range(0x8201, 0x8206)} == {part_len}
    qinv, dq, dp, q, p = _crt_from_dgis(blob, cipher, keks[kek])
    cert = to_dict(parse_one(dgis[0x0202]).children)[0x9F46]
    modulus = recover_with(public_pem(issuer.modulus, 3, tmp_path), cert)[21 : 21 + 128]
    key = RsaKey.from_crt(modulus, 3, p, q, dp, dq, qinv)  # n = pq, e·dp = 1 mod p-1, ...
    block = b"\x6a\x05" + bytes(125) + b"\xbc"  # a DDA-shaped block, opened by OpenSSL
    assert recover_with(public_pem(modulus, 3, tmp_path), rsa_sign_raw(key, block)) == block
    whole = blob + b"".join(dgis.values())
    for part in (p, q, dp, dq, qinv):
        assert part not in whole  # no CRT part in clear in the output


def test_chunking_gives_each_line_its_own_key_whatever_the_split(env: dict[str, object]) -> None:
    store, pool = env["store"], env["pool"]
    assert isinstance(store, SoftwareKeyStore) and isinstance(pool, IccKeyPool)
    issuer = rsa_generate(1152, 3)
    setup = _setup(issuer, "transport-kek")
    res = pool.reserve(4)
    lines = [2, 3, 5]  # line 4 was rejected: its key is wasted, never given to line 5
    pans = ["6231000000000041", "6231000000000058", "6231000000000066"]
    streams = [
        b"".join(bytes.fromhex(f"{d:04X}") + bytes([len(v)]) + v for d, v in card_records(p, b"A/B").items())
        for p in pans
    ]  # fmt: skip
    whole = OdaChunk(setup, res, 2, store).build(lines, streams, pans, ["2812"] * 3)
    split = OdaChunk(setup, res, 2, store).build(lines[:1], streams[:1], pans[:1], ["2812"])
    split += OdaChunk(setup, res, 2, store).build(lines[1:], streams[1:], pans[1:], ["2812"] * 2)
    assert whole == split
    keys: PoolKeys = res.read(0, 4)
    primes_p = [dict(parse_dgis(b))[0x8205] for b in whole]  # p, encrypted, of each card's key
    assert primes_p == [keys.parts(i)[4] for i in (0, 1, 3)]


def test_setup_and_static_data_refusals(env: dict[str, object]) -> None:
    issuer = rsa_generate(1152, 3)
    sign = functools.partial(rsa_sign_raw, issuer)
    common = {"issuer_sign": sign, "issuer_length": 144, "aip": AIP, "transport_kek": "k"}
    with pytest.raises(UsageError, match="cannot sign itself"):
        OdaSetup.make(afl=AFL, cert_dgi=0x0101, **common)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not a record the AFL names"):
        OdaSetup.make(afl=AFL, cert_dgi=0x0401, **common)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="more ODA records"):
        OdaSetup.make(afl=bytes.fromhex("08010103"), cert_dgi=0x0101, **common)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="4-byte entries"):
        OdaSetup.make(afl=b"\x08\x01\x01", cert_dgi=0x0101, **common)  # type: ignore[arg-type]
    setup = _setup(issuer, "transport-kek")
    recs = card_records("6231000000000074", b"C/D")
    del recs[0x0201]
    with pytest.raises(DataError, match="0201 the AFL marks for ODA is missing"):
        static_data_of(setup, recs)


def test_gpo_aip_afl_of_the_reference_profile_and_a_mismatch() -> None:
    import dataclasses

    from cardperso.profiles.loader import load_profile
    from cardperso.profiles.model import TlvItem

    profile = load_profile("ssc3-pboc")
    aip, afl = gpo_aip_afl(profile)  # profiles/ssc3-pboc.yaml, DGIs 9104, 9203 and 9207
    assert aip == bytes.fromhex("7D00") and afl == bytes.fromhex("08010101100103001801020220010300")
    assert profile.pboc is not None
    dgis = tuple(
        dataclasses.replace(c, tlv=(TlvItem(0x82, aip), TlvItem(0x94, bytes.fromhex("08010101"))))
        if c.dgi == 0x9203
        else c
        for c in profile.pboc.constant_dgis
    )
    odd = dataclasses.replace(profile, pboc=dataclasses.replace(profile.pboc, constant_dgis=dgis))
    with pytest.raises(UsageError, match="9104 and 9203 differ"):
        gpo_aip_afl(odd)


def test_setup_for_a_profile_and_the_run_reservation(
    env: dict[str, object], tmp_path: Path
) -> None:
    import dataclasses

    from cardperso.errors import KeyStoreError
    from cardperso.keystore.pool import PoolExhausted
    from cardperso.prep.oda import reserve_for_run
    from cardperso.profiles.loader import load_profile
    from cardperso.profiles.model import ConstantDgi, OdaSpec, TlvItem

    store, pool = env["store"], env["pool"]
    assert isinstance(store, SoftwareKeyStore) and isinstance(pool, IccKeyPool)
    profile = load_profile("ssc3-pboc")
    assert profile.pboc is not None
    profile = dataclasses.replace(profile, pboc=dataclasses.replace(profile.pboc, oda=None))
    assert profile.pboc is not None
    assert OdaSetup.for_profile(profile, store) is None  # no pboc.oda: no ODA
    store.generate_rsa_key("oda-issuer", 1152)
    oda = OdaSpec(issuer_id="623100", issuer_dgi=0x0401, cert_dgi=0x0402)
    with_9f4a = ConstantDgi(0x0F01, 0x70, (TlvItem(0x9F4A, b"\x82"),))
    pboc = dataclasses.replace(
        profile.pboc, oda=oda, constant_dgis=(*profile.pboc.constant_dgis, with_9f4a)
    )
    setup = OdaSetup.for_profile(dataclasses.replace(profile, pboc=pboc), store)
    assert setup is not None
    assert (setup.issuer_length, setup.cert_dgi, setup.ssad_dgi) == (144, 0x0402, None)
    assert (setup.aip, setup.afl, setup.tag_list) == (
        bytes.fromhex("7D00"),  # profiles/ssc3-pboc.yaml
        bytes.fromhex("08010101100103001801020220010300"),
        b"\x82",
    )
    assert setup.transport_kek == profile.transport_kek
    modulus, _ = store.rsa_public_key("oda-issuer")
    block = setup.issuer_sign(b"\x6a" + bytes(142) + b"\xbc")  # the store's signer
    assert recover_with(public_pem(modulus, 3, tmp_path), block) == b"\x6a" + bytes(142) + b"\xbc"

    with pytest.raises(UsageError, match="holds 1024-bit keys, the profile asks for 1408"):
        reserve_for_run(pool, store, bits=1408, lines=1, label="b")
    other = SoftwareKeyStore.generate(test_keys=True, kek_algorithm="3DES")
    with pytest.raises(KeyStoreError, match="not the KEK that protects the pool"):
        reserve_for_run(pool, other, bits=1024, lines=1, label="b")
    # exhausted: a pool of this test's own (the module's pool serves the other tests, which
    # may run after this one: mutmut runs a subset of the tests in any order)
    own = open_or_create(tmp_path / "pool", store, bits=1024, exponent=3, kek="transport-kek")
    keys_json = str(env["root"] / "keys.json")  # type: ignore[operator]
    fill(own, functools.partial(open_store, keys_json), count=2, workers=1)
    free = own.status().free
    assert free == 2
    with pytest.raises(PoolExhausted):
        reserve_for_run(own, store, bits=1024, lines=free + 1, label="b")
    res = reserve_for_run(own, store, bits=1024, lines=free, label="batch-42")
    assert res.count == free and own.status().free == 0
