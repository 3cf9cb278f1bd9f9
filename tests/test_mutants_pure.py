"""Tests that kill mutants which survived the pure suite (issue 18), on the pure layers.

The content key of a personalization file is bound to the digest of its input file: that is
what keeps the AES-CTR nonces (input line numbers) from repeating under one key when the same
batch id is prepared twice from different inputs. Without the binding, line 2 of both files
would be sealed with the same keystream, and XOR-ing the two ciphertexts would give away the
XOR of two cardholders' records."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cardperso.keystore.software import SoftwareKeyStore
from cardperso.layouts import persofile as pf
from cardperso.prep.container import batch_keys, open_sealed, read_header, verify
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile

PROFILE = load_profile("ssc3-pboc")


def _prep(tmp: Path, store: SoftwareKeyStore, name: str, seed: int) -> Path:
    src = tmp / f"{name}.csv"
    make_batch(src, 6, photos=2, seed=seed)
    out = tmp / f"{name}.cppf"
    prepare(
        src,
        PROFILE,
        store,
        lambda: store,
        out,
        tmp / f"{name}-rejects.csv",
        PrepOptions(batch_id="SAME-BATCH", created=1767225600),
    )
    return out


def _keystreams(path: Path, store: SoftwareKeyStore) -> dict[int, tuple[bytes, bytes]]:
    """line -> (nonce, first 32 bytes of the keystream that sealed the record)."""
    data = path.read_bytes()
    with path.open("rb") as fh:
        header, raw = read_header(fh)
    keys = batch_keys(store, "transport-kek", "SAME-BATCH", PROFILE.digest, header.input_digest)
    out: dict[int, tuple[bytes, bytes]] = {}
    pos = len(raw)
    while data[pos : pos + 4] != pf.TRAILER_MAGIC:
        size = 8 + pf.RECORD.parse(data[pos:]).length + 16
        rec = pf.PERSO_RECORD.decode(data[pos : pos + size])
        pos += size
        body = pf.PERSO_RECORD_BODY.decode(rec.body)
        plain = open_sealed(keys, body.nonce, body.sealed)
        pf.PERSO_RECORD_CONTENT.decode(plain)  # the right key: the content parses
        stream = bytes(a ^ b for a, b in zip(body.sealed[:32], plain[:32], strict=True))
        out[rec.line] = (body.nonce, stream)
    return out


def test_same_batch_id_two_inputs_never_share_a_keystream(
    tmp_path: Path, sample_keystore: SoftwareKeyStore
) -> None:
    a = _prep(tmp_path, sample_keystore, "a", seed=1)
    b = _prep(tmp_path, sample_keystore, "b", seed=2)
    assert verify(a, sample_keystore).records == verify(b, sample_keystore).records == 6
    ka, kb = _keystreams(a, sample_keystore), _keystreams(b, sample_keystore)
    assert sorted(ka) == sorted(kb) == list(range(2, 8))
    for line in ka:
        assert ka[line][0] == kb[line][0]  # the same nonce (the input line) ...
        assert ka[line][1] != kb[line][1]  # ... under another key


def test_content_key_depends_on_the_input_digest(sample_keystore: SoftwareKeyStore) -> None:
    d1, d2 = hashlib.sha256(b"one input").digest(), hashlib.sha256(b"another").digest()
    k1 = batch_keys(sample_keystore, "transport-kek", "B1", PROFILE.digest, d1)
    k2 = batch_keys(sample_keystore, "transport-kek", "B1", PROFILE.digest, d2)
    assert len(k1.content) == 16 and k1.content != k2.content
    assert k1 == batch_keys(sample_keystore, "transport-kek", "B1", PROFILE.digest, d1)
