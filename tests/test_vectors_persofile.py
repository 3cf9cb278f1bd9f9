"""The perso-file keys and MACs recomputed by a different implementation (issue 18).

The container is our own format, so no public vector can exist. The expected values are
computed with the OpenSSL command line (tests/openssl_cli.py: ``openssl dgst -sha256``,
``openssl enc -des-ede-ecb``/``-aes-128-ecb``/``-aes-128-ctr``, ``openssl mac ... HMAC``) from
the rules in :mod:`cardperso.prep.container`'s docstring and :mod:`cardperso.layouts.persofile`:

* label ``L = SHA-256("cardperso-persofile/1" ‖ len(batch id) ‖ batch id ‖ profile digest)``;
  ``X = ECB(KEK, L)`` (the key store's ``wrap``); MAC key ``SHA-256("mac" ‖ X)``, PIN seed
  ``SHA-256("pin" ‖ X)``, content key ``SHA-256("enc" ‖ X ‖ input digest)[:16]``;
* record MAC ``HMAC-SHA-256(MAC key, "R" ‖ line (4 bytes) ‖ SHA-256(body))[:16]``;
* file MAC ``HMAC-SHA-256(MAC key, "F" ‖ SHA-256(header) ‖ SHA-256(record MACs) ‖ count)``;
* record contents: AES-128-CTR under the content key, counter block ``line (8) ‖ 0 (8)``.

One record MAC is also recorded from a hand run (OpenSSL 3.0.19, 27 Jan 2026).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import openssl_cli as ossl
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep.container import (
    batch_keys,
    open_sealed,
    read_header,
    record_mac,
    seal_many,
)
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile

H = bytes.fromhex
PROFILE = load_profile("ssc3-pboc")
ECB = {("3DES", 16): "des-ede-ecb", ("3DES", 24): "des-ede3-ecb", ("AES", 16): "aes-128-ecb"}


def _outside_keys(
    store: SoftwareKeyStore, kek: str, batch_id: str, profile_digest: bytes, input_digest: bytes
) -> tuple[bytes, bytes, bytes]:
    key = store._key(kek)
    bid = batch_id.encode("utf-8")
    label = ossl.sha256(b"cardperso-persofile/1" + bytes((len(bid),)) + bid + profile_digest)
    x = ossl.enc(ECB[(key.algorithm, len(key.value))], key.value, label)
    return (
        ossl.sha256(b"mac" + x),
        ossl.sha256(b"pin" + x),
        ossl.sha256(b"enc" + x + input_digest)[:16],
    )


@pytest.mark.parametrize("kek", ["transport-kek", "transport-kek-aes"])
@pytest.mark.parametrize("batch_id", ["A", "2026-12-batch-0042", "批次"])
def test_batch_keys(sample_keystore: SoftwareKeyStore, kek: str, batch_id: str) -> None:
    input_digest = ossl.sha256(b"an input file")
    keys = batch_keys(sample_keystore, kek, batch_id, PROFILE.digest, input_digest)
    outside = _outside_keys(sample_keystore, kek, batch_id, PROFILE.digest, input_digest)
    assert (keys.mac, keys.pin_seed, keys.content) == outside


@pytest.mark.parametrize(("line", "body"), [(1, b""), (7, b"cardperso"), (70000, bytes(300))])
def test_record_mac(line: int, body: bytes) -> None:
    key = bytes(range(32))
    msg = b"R" + line.to_bytes(4, "big") + ossl.sha256(body)
    assert record_mac(key, line, body) == ossl.hmac_sha256(key, msg)[:16]


def test_record_mac_recorded_by_hand() -> None:
    # printf cardperso | openssl dgst -sha256 -binary > d; (printf R; printf '\x00\x00\x00\x07';
    # cat d) | openssl mac -digest SHA256 -macopt hexkey:000102..1F HMAC
    # -> 87937832A7B6A91EA6392F7CADC1D21E399BDBF94B8AA58567E0B557546F6A8E (first 16 bytes kept)
    got = record_mac(bytes(range(32)), 7, b"cardperso")
    assert got == H("87937832A7B6A91EA6392F7CADC1D21E")


def test_sealed_contents_are_aes_ctr(sample_keystore: SoftwareKeyStore) -> None:
    keys = batch_keys(sample_keystore, "transport-kek", "A", PROFILE.digest, bytes(32))
    items = [(3, b"x" * 5), (4, bytes(range(16))), (1000, bytes(range(200)) * 3)]
    for (line, content), (nonce, sealed) in zip(items, seal_many(keys, items)):
        assert nonce == line.to_bytes(8, "big")
        assert sealed == ossl.enc("aes-128-ctr", keys.content, content, nonce + bytes(8))
        assert open_sealed(keys, nonce, sealed) == content


def test_a_prepared_file_carries_outside_macs(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    src = tmp_path / "in.csv"
    make_batch(src, 6, photos=1, seed=3)
    out = tmp_path / "out.cppf"
    prepare(
        src,
        PROFILE,
        sample_keystore,
        lambda: sample_keystore,
        out,
        tmp_path / "rejects.csv",
        PrepOptions(batch_id="V", created=1767225600),
    )
    data = out.read_bytes()
    with out.open("rb") as fh:
        header, raw = read_header(fh)
    assert header.input_digest == ossl.sha256(src.read_bytes())
    mac_key, pin_seed, _content = _outside_keys(
        sample_keystore, header.kek_name, "V", PROFILE.digest, header.input_digest
    )
    # the default PIN seed travels wrapped: ECB under the KEK of the seed padded 80 00..
    kek = sample_keystore._key(header.kek_name)
    padded_seed = pin_seed + b"\x80" + bytes(7)
    assert header.pin_seed == ossl.enc(ECB[(kek.algorithm, len(kek.value))], kek.value, padded_seed)
    macs, pos, count = b"", len(raw), header.record_count
    while data[pos : pos + 4] != pf.TRAILER_MAGIC:  # frames: length (4), line (4), body, MAC
        length, line = int.from_bytes(data[pos : pos + 4]), int.from_bytes(data[pos + 4 : pos + 8])
        body, mac = data[pos + 8 : pos + 8 + length], data[pos + 8 + length : pos + 24 + length]
        msg = b"R" + line.to_bytes(4, "big") + ossl.sha256(body)
        assert mac == ossl.hmac_sha256(mac_key, msg)[:16]
        macs, pos = macs + mac, pos + 24 + length
    assert len(macs) == 16 * count
    assert count == 6
    trailer = data[-(4 + 4 + 32) :]
    assert trailer[:8] == pf.TRAILER_MAGIC + count.to_bytes(4, "big")
    file_mac = ossl.hmac_sha256(
        mac_key, b"F" + ossl.sha256(raw) + ossl.sha256(macs) + count.to_bytes(4, "big")
    )
    assert trailer[8:] == file_mac
