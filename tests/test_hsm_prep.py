"""Data preparation gives byte-identical personalization files with the software store and the
PKCS#11 store (SoftHSM2) holding the same keys, in fast and in strict mode.

Strict mode runs with the AES transport KEK (SoftHSM2 wraps under AES keys only): the profile's
``transport_kek`` is pointed at ``transport-kek-aes`` for every store of that comparison.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from cardperso.keystore.base import KeyStore
from cardperso.keystore.pkcs11 import Pkcs11KeyStore
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.pipeline import PrepOptions, prepare
from cardperso.prep.synth import make_batch
from cardperso.profiles.loader import load_profile
from fixtures_hsm import SoftHsm
from keystore_contract import contract_keys

pytestmark = pytest.mark.hsm

Factory = Callable[..., Pkcs11KeyStore]


def _run(
    tmp: Path,
    batch: Path,
    kek: str,
    store: KeyStore,
    tag: str,
    opener: Callable[[], KeyStore] | None = None,
    workers: int = 1,
) -> bytes:
    profile = dataclasses.replace(load_profile("ssc2-pboc"), transport_kek=kek)
    out = tmp / f"{tag}.perso"
    summary = prepare(
        batch,
        profile,
        store,
        opener or (lambda: store),
        out,
        tmp / f"{tag}.rejects.csv",
        PrepOptions(batch_id="HSM-EQ-1", created=1_790_000_000, chunk_size=16, workers=workers),
    )
    records = len(batch.read_bytes().splitlines()) - 1  # make_batch: a header, one line each
    assert records in (40, 60)  # the batches of the tests below
    assert (summary.read, summary.prepared, summary.rejected) == (records, records, 0)
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
    reference = _run(tmp_path, batch, kek, soft, "soft")
    assert _run(tmp_path, batch, kek, hsm, f"hsm-{mode}") == reference


def test_prep_workers_open_their_own_sessions(
    hsm_store_factory: Factory, softhsm: SoftHsm, tmp_path: Path
) -> None:
    # prep --workers forks; each worker opens the store again (new C_Initialize, own login)
    batch = tmp_path / "batch.csv"
    make_batch(batch, 60, seed=6)
    keys = contract_keys()
    hsm = hsm_store_factory(mode="strict", label_prefix="workers/")
    for key in keys.values():
        if key.algorithm != "SM4":
            hsm.import_key(key, test_key=True)
    opener = functools.partial(
        Pkcs11KeyStore,
        softhsm.module,
        softhsm.token_label,
        softhsm.pin_source,
        mode="strict",
        label_prefix="workers/",
    )
    soft = SoftwareKeyStore(keys.values(), test_keys=True)
    reference = _run(tmp_path, batch, "transport-kek-aes", soft, "soft")
    got = _run(tmp_path, batch, "transport-kek-aes", hsm, "hsm", opener, workers=2)
    assert got == reference
