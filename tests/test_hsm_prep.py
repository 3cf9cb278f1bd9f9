"""Data preparation gives byte-identical personalization files with the software store and the
PKCS#11 store (SoftHSM2) holding the same keys, in fast and in strict mode.

Strict mode runs with the AES transport KEK (SoftHSM2 wraps under AES keys only): the profile's
``transport_kek`` is pointed at ``transport-kek-aes`` for every store of that comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.keystore.base import KeyStore
from cardperso.keystore.pkcs11 import Pkcs11KeyStore
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from keystore_contract import contract_keys

pytestmark = pytest.mark.hsm

Factory = Callable[..., Pkcs11KeyStore]


def _run(tmp: Path, batch: Path, profile_name: str, kek: str, store: KeyStore, tag: str) -> bytes:
    profile = dataclasses.replace(load_profile(profile_name), transport_kek=kek)
    out = tmp / f"{tag}.perso"
    summary = prepare(
        batch,
        profile,
        store,
        lambda: store,
        out,
        tmp / f"{tag}.rejects.csv",
        PrepOptions(batch_id="HSM-EQ-1", created=1_790_000_000, chunk_size=16),
    )
    assert summary.prepared > 0 and summary.rejected == 0
    return out.read_bytes()


@pytest.mark.parametrize(("mode", "kek"), [("fast", "transport-kek"),
                                           ("strict", "transport-kek-aes")])  # fmt: skip
def test_prep_files_identical(
    hsm_store_factory: Factory, tmp_path: Path, mode: str, kek: str
) -> None:
    # ssc2-pboc: SSSE keys are 3DES (SoftHSM2 has no SM4), plus PBOC option A keys
    batch = tmp_path / "batch.csv"
    make_batch(batch, 40, seed=5)
    keys = contract_keys()
    soft = SoftwareKeyStore(keys.values(), test_keys=True)
    hsm = hsm_store_factory(mode=mode)
    for key in keys.values():
        if key.algorithm != "SM4":
            hsm.import_key(key, test_key=True)
    reference = _run(tmp_path, batch, "ssc2-pboc", kek, soft, "soft")
    got = _run(tmp_path, batch, "ssc2-pboc", kek, hsm, f"hsm-{mode}")
    assert got == reference
