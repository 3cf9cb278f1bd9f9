"""Pre-flight: everything that is not the card's is checked before the first card is fed.

How this works
--------------
A fault that is not the card's must never spend a card. Before a station parks its first blank
card the line checks, and refuses to start with one clear error naming the fault and what to do:

* the keys (:func:`check_keys`): every key the chip plan needs is in the store, has the
  algorithm of the plan's secure channel and can be used the way a station will use it (a
  trial derivation with a made-up card, nothing is kept): the card vendor's transport key that
  opens blank cards, the issuer KMC the per-card keys come from, the issuer key that verifies
  the read-back cryptogram. The transport KEK was checked with the file. A missing or unusable
  key is the operator's fault: :class:`~cardperso.errors.UsageError` (exit 2);
* the readers and printers (:func:`check_devices`): every station's PC/SC reader is listed by
  pcscd, every printer answers a status request with its cover closed, ribbon in, cards in the
  feeder and room in the reject box; otherwise :class:`~cardperso.errors.DeviceError` (exit 3);
* the profile (in :class:`~cardperso.line.runner.LineRun`): the installed profile is the one
  the file was prepared with (its digest).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from cardperso.chip.model import ChipPlan
from cardperso.devices import pcsc
from cardperso.devices.printer import OPERATOR_ACTIONS, CardPrinter
from cardperso.errors import CardPersoError, CryptogramMismatch, DeviceError, UsageError
from cardperso.keystore.base import KeyStore
from cardperso.line.linefile import LineSpec

#: A made-up key diversification data and card for trial derivations (never a real card's).
_TRIAL_KDD = bytes(10)
_TRIAL_CARD = ("6200000000000000", "00")


def _import_hint(name: str, algorithm: str) -> str:
    return (
        f"import it by key ceremony: cardperso keys import-components --store STORE "
        f"--name {name} --algorithm {algorithm}"
    )


def needed_keys(plan: ChipPlan) -> list[tuple[str, str, str]]:
    """(name, role, algorithm) of every key a station uses for one card of ``plan``."""
    return [(name, role, algorithm) for name, role, algorithm, _use in _uses(plan)]


def _uses(plan: ChipPlan) -> list[tuple[str, str, str, str]]:
    """(name, role, algorithm, use) of every key of ``plan``; ``use`` says how a station uses
    it: ``transport`` / ``kmc`` (GP diversification) or ``arqc`` (read-back verification)."""
    gp = "AES" if plan.scp == "03" else "3DES"
    out = [
        (
            plan.transport_kmc,
            "the card vendor's transport key that opens blank cards",
            gp,
            "transport",
        )
    ]
    if plan.put_key:
        out.append((plan.kmc, "the issuer KMC the per-card keys are diversified from", gp, "kmc"))
    if plan.verify_ac and plan.imk_ac:
        out.append((plan.imk_ac, "the issuer key that verifies the read-back ARQC", "3DES", "arqc"))
    return out


def _trial(keys: KeyStore, name: str, use: str, plan: ChipPlan) -> None:
    """Use ``name`` once the way a station does, on a made-up card (nothing is kept)."""
    if use == "arqc":
        with contextlib.suppress(CryptogramMismatch):  # computed: the key is usable
            keys.verify_arqc(name, _TRIAL_CARD, b"\x00\x00", b"", bytes(8))
        return
    method = plan.transport_diversification if use == "transport" else plan.diversification
    keys.diversify_gp(name, [_TRIAL_KDD], method, wrap_under=None)


def check_keys(keys: KeyStore, plan: ChipPlan, extra: Iterable[tuple[str, str]] = ()) -> None:
    """Refuse to start when a key of ``plan`` (or of ``extra``: (name, role)) is missing,
    of the wrong algorithm or unusable (see the module docstring)."""
    if plan.put_key and plan.transport_kmc == plan.kmc:
        raise UsageError(
            f"pre-flight: the blank cards' transport key and the issuer KMC are one key "
            f"({plan.kmc!r}): the card vendor's transport key is a key of its own (profile "
            "gp.transport_kmc, e.g. gp-transport)"
        )
    present = set(keys.names())
    wanted = [*_uses(plan), *((n, role, "", "") for n, role in extra)]
    for name, role, algorithm, use in wanted:
        if name not in present:
            hint = _import_hint(name, algorithm or "3DES")
            raise UsageError(
                f"pre-flight: key store {keys.location} has no key {name!r} ({role}); {hint}"
            )
        info = keys.info(name)
        if algorithm and info.algorithm != algorithm:
            raise UsageError(
                f"pre-flight: key {name!r} ({role}) is {info.algorithm}; SCP{plan.scp} needs "
                f"{algorithm}"
            )
        if algorithm:
            try:
                _trial(keys, name, use, plan)
            except CardPersoError as exc:
                raise UsageError(
                    f"pre-flight: key {name!r} ({role}) cannot be used: {exc}"
                ) from None


def _printer_problem(status: dict[str, str]) -> str | None:
    """What keeps a printer from taking a card, from its status reply, with the fix."""
    if status.get("cover", "closed") == "open":
        return f"cover open: {OPERATOR_ACTIONS['C']}"
    if status.get("ribbon", "ok") not in ("ok", ""):
        return f"ribbon {status['ribbon']}: {OPERATOR_ACTIONS['R']}"
    if status.get("feeder", "").strip() in ("0", "empty"):
        return f"no blank cards in the feeder: {OPERATOR_ACTIONS['F']}"
    used, _, capacity = status.get("rejects", "").partition("/")
    if used.isdigit() and capacity.isdigit() and int(used) >= int(capacity):
        return f"reject box full: {OPERATOR_ACTIONS['B']}"
    return None


def check_devices(
    spec: LineSpec, printer_factory: Callable[[str], CardPrinter], *, readers: bool = True
) -> None:
    """Every station's reader is there (``readers``: PC/SC stations) and every printer answers,
    ready for a card; :class:`DeviceError` naming the station otherwise."""
    if readers:
        try:
            listed = {r.name for r in pcsc.list_readers()}
        except CardPersoError as exc:
            raise DeviceError(f"pre-flight: PC/SC readers cannot be listed: {exc}") from None
        missing = [s for s in spec.stations if s.reader not in listed]
        if missing:
            names = ", ".join(f"{s.name}: {s.reader!r}" for s in missing)
            raise DeviceError(
                f"pre-flight: reader not found ({names}); {len(listed)} reader(s) listed by "
                "pcscd: check the cable and `cardperso readers`"
            )
    for station in spec.stations:
        try:
            printer = printer_factory(station.printer)
            try:
                status = printer.status()
            finally:
                printer.close()
        except CardPersoError as exc:
            raise DeviceError(
                f"pre-flight: station {station.name}: printer {station.printer} does not "
                f"answer: {exc}"
            ) from None
        problem = _printer_problem(status)
        if problem is not None:
            raise DeviceError(
                f"pre-flight: station {station.name}: printer {station.printer}: {problem}"
            )
