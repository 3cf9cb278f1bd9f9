"""Offline data authentication for a whole run: what prep, the bank's two-stage flow and the
demo call, around the per-card functions of :mod:`cardperso.prep.oda`.

How this works
--------------
:func:`plan_run` is called once per run, **before any output exists**: it resolves the
profile's ``pboc.oda`` section (:meth:`~cardperso.prep.oda.OdaSetup.for_profile`: the AIP and
AFL of every GPO response, the issuer key), signs the issuer certificate record ``70 { 8F, 90,
92, 9F32 }`` once (raw RSA is deterministic: the same record for every card of the batch,
:func:`cardperso.keystore.oda.issuer_record`) and reserves one ICC key per input line from the
pool (:func:`~cardperso.prep.oda.reserve_for_run`: an exhausted pool, a pool of another size or
under another KEK is a clear error and nothing is written). The :class:`OdaRun` it returns is
plain values, so it travels to prep's forked workers; each worker makes its own setup from its
own key store (:meth:`OdaRun.stage`), and the bank makes one card at a time (:meth:`OdaRun.card`).

Per card the run adds the issuer record DGI and what :func:`~cardperso.prep.oda.icc_dgis`
makes: the ICC certificate record (9F46 9F47 9F48 9F49), 93 for SDA, the private key DGIs
8201-8205 under the transport KEK (secret DGIs: :data:`SECRET_DGIS`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardperso.codec.columns import Var, assemble
from cardperso.codec.dgi import encode_dgi
from cardperso.errors import DataError, UsageError
from cardperso.keystore import KeyStore
from cardperso.keystore.oda import IssuerCertSpec, issuer_record
from cardperso.keystore.pool import PART_DGIS, IccKeyPool, Reservation
from cardperso.prep.oda import OdaChunk, OdaSetup, icc_dgis, reserve_for_run, static_data_of
from cardperso.profiles.model import Profile

if TYPE_CHECKING:
    from cardperso.prep.build import ExtraDgis
    from cardperso.prep.cards import Cards

__all__ = ["SECRET_DGIS", "OdaRun", "check_aip", "count_lines", "ensure_pool", "plan_run"]

#: The ICC private key DGIs: secret, wrapped under the transport KEK in the perso file.
SECRET_DGIS: tuple[int, ...] = tuple(PART_DGIS)

#: The most ICC keys a run makes for itself when it names no pool (:func:`plan_run`).
SCRATCH_MAX = 2000

#: AIP byte 1 (EMV 4.3 Book 3 table 37): b7 SDA, b6 DDA, b1 CDA.
AIP_SDA, AIP_DDA, AIP_CDA = 0x40, 0x20, 0x01


def check_aip(profile: Profile) -> None:
    """A product claims in its AIP exactly the ODA it carries data for: SDA needs ``pboc.oda``
    with an SSAD record, DDA and CDA need ``pboc.oda`` (the card signs with its ICC key); a
    profile without ``pboc.oda`` claims none of them. Raises :class:`UsageError` naming the
    claim that has no data."""
    p = profile.pboc
    if p is None:
        return
    for c in p.constant_dgis:
        for t in c.tlv:
            if t.tag != 0x82 or len(t.value) != 2:
                continue
            claims = t.value[0]
            missing = []
            if claims & AIP_SDA and (p.oda is None or p.oda.ssad_dgi is None):
                missing.append("SDA")
            for bit, name in ((AIP_DDA, "DDA"), (AIP_CDA, "CDA")):
                if claims & bit and p.oda is None:
                    missing.append(name)
            if missing:
                raise UsageError(
                    f"profile {profile.name}: the AIP (82) of DGI {c.dgi:04X} claims "
                    f"{', '.join(missing)} without the data (pboc.oda): drop the claim or add "
                    "the section"
                )


def count_lines(path: str | os.PathLike[str]) -> int:
    """Physical lines of a file (a last line without its line end counts)."""
    count, last = 0, b"\n"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


@dataclass(frozen=True, slots=True)
class OdaRun:
    """A run's ODA (module docstring): the reservation, the input line of its first key and
    the issuer certificate record DGI (the same for every card)."""

    reservation: Reservation
    first_line: int
    issuer_dgi: bytes
    #: A pool made for this run alone (no pool named: :func:`plan_run`), removed by :meth:`close`.
    scratch: str | None = None

    def close(self) -> None:
        """Remove the run's own pool, if it made one (its keys were this run's alone)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _chunk(self, profile: Profile, store: KeyStore) -> OdaChunk:
        setup = OdaSetup.for_profile(profile, store)
        if setup is None:  # pragma: no cover - plan_run made this run from the same profile
            raise UsageError(f"profile {profile.name} asks for no ODA")
        return OdaChunk(setup, self.reservation, self.first_line, store)

    def stage(self, profile: Profile, store: KeyStore) -> ExtraDgis:
        """Prep's PBOC stage of extra DGIs (``ChunkBuilder.extra_pboc``) for this run, with the
        worker's own key store: per card the issuer record, then its ICC DGIs."""
        from cardperso.prep.build import oda_stage

        inner = oda_stage(self._chunk(profile, store))
        head = self.issuer_dgi

        def stage(c: Cards, dgis: Var) -> Var:
            return assemble(c.n, [head, inner(c, dgis)])

        return stage

    def card(
        self, profile: Profile, store: KeyStore, line: int, pboc: bytes, pan: str, yymm: str
    ) -> bytes:
        """The ODA DGIs of one card (the bank's two-stage flow): ``line`` picks its key, ``pboc``
        is its PBOC DGI stream so far (the static data's records), ``yymm`` its expiry."""
        chunk = self._chunk(profile, store)
        oda = profile.pboc.oda if profile.pboc is not None else None
        if oda is not None and not pan.startswith(oda.issuer_id):
            raise DataError(
                f"does not start with the issuer identifier {oda.issuer_id} (pboc.oda.issuer_id)",
                field="pan",
                record=line,
            )
        keys = self.reservation.pick([line - self.first_line])
        static = [static_data_of(chunk.setup, pboc)]
        (icc,) = icc_dgis(chunk.setup, keys, static, [pan], [yymm], store)
        return self.issuer_dgi + icc


def plan_run(
    profile: Profile,
    store: KeyStore,
    pool_dir: str | os.PathLike[str] | None,
    *,
    lines: Callable[[], int],
    first_line: int,
    label: str,
    opener: Callable[[], KeyStore] | None = None,
) -> OdaRun | None:
    """Resolve a profile's ODA and reserve its keys (module docstring); ``None`` when the
    profile asks for no ODA. ``lines()``: keys to reserve (one per input line that can hold a
    record; called only for a profile with ODA), ``first_line``: the input line of the first
    record.

    Without ``pool_dir`` (a library call that names no pool: tests, simulations; the CLI always
    names one) the run makes its own ICC keys first, with every core (~20 ms per 1024-bit key
    and core), in a scratch pool that :meth:`OdaRun.close` removes; at most
    :data:`SCRATCH_MAX` of them (a larger batch is refused: it needs a pool)."""
    check_aip(profile)
    p = profile.pboc
    if p is None or p.oda is None:
        return None
    oda = p.oda
    if OdaSetup.for_profile(profile, store) is None:  # pragma: no cover - checked above
        return None
    spec = IssuerCertSpec(
        issuer_id=oda.issuer_id,
        expiry=oda.issuer_cert_expiry,
        serial=oda.issuer_cert_serial,
        ca_index=oda.ca_index,
        rid=p.aid[:5],
        issuer_key=oda.issuer_key,
    )
    record = encode_dgi(oda.issuer_dgi, issuer_record(store, spec))  # a missing key: no pool made
    scratch = None
    try:
        if pool_dir is None:
            need = max(0, lines())
            if need > SCRATCH_MAX:
                raise UsageError(
                    f"profile {profile.name} asks for ODA and names no ICC key pool: {need:,} "
                    f"input lines need a pool (`cardperso keys pool generate KEYSTORE --bits "
                    f"{oda.icc_bits} --count N`)"
                )
            scratch = pool_dir = tempfile.mkdtemp(prefix="cardperso-icc-")
            ensure_pool(profile, store, opener or (lambda: store), pool_dir, need)
        pool = IccKeyPool(pool_dir)
        if not pool.exists():
            raise UsageError(
                f"no ICC key pool at {Path(pool_dir)}: make one with `cardperso keys pool "
                f"generate KEYSTORE --bits {oda.icc_bits} --count N`"
            )
        reservation = reserve_for_run(
            pool, store, bits=oda.icc_bits, lines=max(0, lines()), label=label
        )
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    return OdaRun(reservation, first_line, record, scratch)


def ensure_pool(
    profile: Profile,
    store: KeyStore,
    opener: Callable[[], KeyStore],
    directory: str | os.PathLike[str],
    count: int,
    *,
    workers: int | None = None,
) -> tuple[str, int, float] | None:
    """A small ICC key pool of the profile's key size with ``count`` free keys at
    ``directory`` (made with every core, under the profile's transport KEK), for the demo and
    the simulations: ``(directory, keys generated, seconds)``, ``None`` without ODA."""
    oda = profile.pboc.oda if profile.pboc is not None else None
    if oda is None:
        return None
    from cardperso.keystore.poolgen import fill, open_or_create

    pool = open_or_create(
        directory, store, bits=oda.icc_bits, exponent=3, kek=profile.transport_kek
    )
    made = fill(pool, opener, count=count, workers=workers or os.cpu_count() or 1)
    return os.fspath(directory), made.generated, made.seconds
