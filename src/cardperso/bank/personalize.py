"""The bank's personalization of a two-stage card, sans-IO, and the batch around it.

How this works
--------------
:func:`bank_card` is a flow of :mod:`cardperso.chip` (the GP client of :mod:`cardperso.chip.gp`):

1. SELECT the issuer security domain and GET DATA CPLC (no authentication needed): the chip
   serial, which finds the card's account row (:class:`~cardperso.bank.accounts.AccountBatch`);
2. the card's PBOC DGIs are built with the **bank's** keys: card master keys by EMV option A
   from the bank's issuer master keys, derived inside the bank's store and wrapped under the
   bank's KEK; the records from :func:`cardperso.prep.build.pboc_dgis` of the bank
   profile (the same template data preparation uses); for a profile with ``pboc.oda`` the
   offline-data-authentication DGIs of :mod:`cardperso.prep.oda_run` (the bank's issuer
   certificate, an ICC key from the bank's ICC key pool - reserved for the whole batch
   before the first card, :func:`plan_oda` - and its certificate signed by the bank's issuer
   key);
3. SELECT the bank's SSD and open SCP02 with the batch's transport keys; PUT KEY replaces them
   with per-card keys diversified from the bank's KMC and the card's KDD (key version
   ``bank_kvn``); a card whose SSD does not accept the transport keys (already personalized,
   or another bank's card) fails **before** EXTERNAL AUTHENTICATE;
4. INSTALL [for make selectable] and INSTALL [for personalization] of the PBOC application,
   STORE DATA (8000 / 8010, and the ICC private key 8201-8205 of offline data authentication,
   unwrapped from the bank KEK and at once encrypted under the session DEK);
5. read-back: :func:`cardperso.bank.terminal.verify_card` (PSE selection, GPO, records, an
   ARQC the issuer host verifies, issuer authentication).

:func:`personalize_batch` drives it for every card presented (a callable returns a transport
per card) and writes the account-opening file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cardperso.bank import terminal
from cardperso.bank.accounts import AccountBatch, AccountFile, AccountRecord, Handover
from cardperso.bank.host import HostKeys, IssuerHost
from cardperso.bank.twostage import TwoStage, transport_keys
from cardperso.chip.gp import (
    SecureSession,
    install_command,
    install_for_perso,
    open_domain,
    read_serial,
)
from cardperso.chip.script import PAD80_DGIS, unwrap_secret
from cardperso.chip.transport import ApduCount, Transport, drive
from cardperso.codec import tlv
from cardperso.codec.apdu import CommandAPDU
from cardperso.codec.dgi import parse_dgis
from cardperso.crypto.gp import StaticKeys
from cardperso.errors import (
    CardError,
    CardPersoError,
    CryptogramMismatch,
    DataError,
    KeyStoreError,
    SecurityError,
    TransportError,
    UsageError,
)
from cardperso.keystore.base import DEFAULT_KEK, KeyStore
from cardperso.prep.build import pboc_dgis
from cardperso.prep.keys import pin_block, seeded_pin
from cardperso.prep.oda_run import OdaRun, plan_run
from cardperso.protocol.storedata import DgiItem, StoreDataConventions

__all__ = [
    "BankPlan",
    "BankResult",
    "bank_card",
    "pboc_items",
    "personalize_batch",
    "personalize_stations",
    "plan_oda",
]

log = logging.getLogger(__name__)

#: Secret DGIs and their plaintext length (a longer wrapped value was padded).
SECRET_DGIS = {0x8000: 48, 0x8010: 8}


class AccountSink(Protocol):
    """Where the account-opening rows go (:class:`~cardperso.bank.accounts.AccountFile`)."""

    def add(
        self, rec: AccountRecord | None, serial: bytes, outcome: str, reason: str = ""
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class BankPlan:
    """Everything the bank's chip steps need besides the keys and the account row."""

    two: TwoStage
    batch: str
    kek: str = DEFAULT_KEK
    pin_seed: bytes = field(default=b"", repr=False)  # secret: every PIN derives from it
    verify: bool = True
    #: The bank's ICC key pool, for a bank profile with offline data authentication.
    icc_pool: str | None = None
    #: The batch's ODA run (its reserved ICC keys), set by :func:`plan_oda`.
    oda: OdaRun | None = None


@dataclass(frozen=True, slots=True)
class BankResult:
    chip_serial: bytes
    line: int
    pan_masked: str
    checks: tuple[str, ...]
    apdus: int


class NoAccount(DataError):
    """The card in the reader has no row in the bank's input."""


def pboc_items(rec: AccountRecord, plan: BankPlan, store: KeyStore) -> list[tuple[int, bytes]]:
    """The card's PBOC DGIs, secret ones (8000, 8010) still wrapped under the bank's KEK."""
    pboc = plan.two.bank.pboc
    assert pboc is not None
    card = [(rec.pan, rec.pan_seq)]
    ac, smi, smc = (
        store.derive_emv_a(name, card, wrap_under=plan.kek)[0]
        for name in (pboc.imk_ac, pboc.imk_smi, pboc.imk_smc)
    )
    pin = rec.pin or seeded_pin(plan.pin_seed, rec.ssn, plan.two.bank.pin.length)
    aligned = store.info(plan.kek).algorithm == "3DES"  # an 8-byte block is a whole 3DES block
    wrapped_pin = store.wrap(plan.kek, pin_block(pin), pad=not aligned)
    blob = pboc_dgis(
        plan.two.bank, rec.template_values(), ac.data + smi.data + smc.data,
        ac.kcv + smi.kcv + smc.kcv, wrapped_pin,
    )  # fmt: skip
    if plan.oda is not None:
        yymm = rec.expiry_date[2:6]
        blob += plan.oda.card(plan.two.bank, store, rec.line, blob, rec.pan, yymm)
    elif pboc.oda is not None:
        raise UsageError("the bank profile asks for ODA: plan the batch's ICC keys (plan_oda)")
    return list(parse_dgis(blob))


def plan_oda(plan: BankPlan, batch: AccountBatch, store: KeyStore) -> BankPlan:
    """The plan with the batch's ODA run when the bank profile asks for offline data
    authentication: one ICC key of ``plan.icc_pool`` reserved per input line of the batch,
    before the first card (an exhausted pool stops here, no card touched)."""
    if plan.oda is not None or plan.two.bank.pboc is None or plan.two.bank.pboc.oda is None:
        return plan
    if plan.icc_pool is None:
        raise UsageError("the bank profile asks for ODA: name the bank's ICC key pool (--icc-pool)")
    lines = [r.line for r in (*batch.by_serial.values(), *batch.by_ssn.values())]
    first = min(lines, default=2)
    oda = plan_run(
        plan.two.bank, store, plan.icc_pool, lines=lambda: max(lines, default=first) - first + 1,
        first_line=first, label=f"bank {plan.batch}",
    )  # fmt: skip
    return replace(plan, oda=oda)


def _bank_keys(store: KeyStore, plan: BankPlan, kdd: bytes) -> StaticKeys:
    ssd = plan.two.ssd
    (keys,) = store.diversify_gp(ssd.kmc, [kdd], ssd.diversification, wrap_under=None)
    return StaticKeys(
        keys.enc.secret().value, keys.mac.secret().value, keys.dek.secret().value, "3DES"
    )


def _open_ssd(plan: BankPlan, store: KeyStore) -> Generator[bytes, bytes, SecureSession]:
    """Open the bank's SSD: with the batch's transport keys, which PUT KEY then replaces by
    per-card keys; when the transport key set is already gone (``6A88``: a card whose earlier
    personalization was interrupted after PUT KEY), with the card's per-card keys."""
    ssd = plan.two.ssd
    transport = transport_keys(store, plan.two, plan.batch)
    try:
        session = yield from open_domain(ssd.aid, transport, kvn=ssd.transport_kvn)
    except CardError as exc:
        if exc.sw != 0x6A88:
            raise
        log.info("SSD transport keys already replaced: resuming with the per-card keys")
        resumed: SecureSession = yield from open_domain(
            ssd.aid, lambda kdd: _bank_keys(store, plan, kdd), kvn=ssd.bank_kvn
        )
        return resumed
    del transport
    new_keys = _bank_keys(store, plan, session.kdd)
    yield from session.put_key(new_keys, ssd.bank_kvn, "PUT KEY (per-card SSD keys)")
    del new_keys
    return session


def _app_state(session: SecureSession, aid: bytes) -> Generator[bytes, bytes, str]:
    """The life-cycle of ``aid`` from GET STATUS (P1 40, TLV form) in the SSD's session."""
    data = yield from session.send(
        CommandAPDU(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256).to_bytes(), "GET STATUS"
    )
    codes = {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED"}
    for entry in tlv.parse(data):
        if entry.tag != 0xE3:
            continue
        items = tlv.parse(entry.value)
        found, state = tlv.find(items, 0x4F), tlv.find(items, 0x9F70)
        if found is not None and found.value == aid and state is not None:
            return codes.get(state.value[0], "LOCKED")
    raise CardError(0x6A88, "GET STATUS", "the bank's domain has no PBOC application")


def bank_card(
    batch: AccountBatch,
    plan: BankPlan,
    store: KeyStore,
    host: IssuerHost,
    handover: Handover | None = None,
) -> Generator[bytes, bytes, BankResult]:
    """The bank's chip steps for the card in the reader (see the module docstring)."""
    counted = ApduCount()
    serial = yield from counted(read_serial())
    rec = batch.match(serial, handover)
    if rec is None:
        raise NoAccount(f"chip {serial.hex().upper()} has no account row", field="chip_serial")
    two = plan.two
    dgis = pboc_items(rec, plan, store)
    session = yield from counted(_open_ssd(plan, store))
    pboc_aid = two.pboc_aid
    state = yield from counted(_app_state(session, pboc_aid))
    if state == "PERSONALIZED":
        session.close()
        raise CardError(0x6985, "PBOC", "the PBOC application is already personalized")
    if state == "INSTALLED":
        yield from counted(
            session.send(install_command(0x08, b"", b"", pboc_aid, b""), "INSTALL make selectable")
        )
    yield from counted(session.send(install_for_perso(pboc_aid), "INSTALL [for personalization]"))
    items = [
        DgiItem(d, store.unwrap(plan.kek, v, pad=len(v) != SECRET_DGIS[d]), True)
        if d in SECRET_DGIS
        else DgiItem(d, unwrap_secret(store, plan.kek, d, v), True)  # the ICC key's CRT parts
        if d in PAD80_DGIS
        else DgiItem(d, v, False)
        for d, v in dgis
    ]
    conv = StoreDataConventions(
        dgi_format=two.bank.store_data.p1_dgi_format, block_size=8, padding_overrides=PAD80_DGIS
    )
    yield from counted(session.store_data(items, conv))
    del items
    session.close()
    checks = ["ssd-keys", "pboc-personalized"]
    if plan.verify:
        result = yield from counted(terminal.verify_card(host))
        checks += list(result.checks)
    return BankResult(serial, rec.line, rec.pan_masked, tuple(checks), counted.n)


def pin_seed_for(store: KeyStore, kek: str, batch: str) -> bytes:
    """The batch's PIN seed, derived from the bank's KEK (deterministic; regenerable)."""
    digest = hashlib.sha256(b"cardperso bank pin seed " + batch.encode("utf-8")).digest()[:16]
    return store.encrypt(kek, digest, "ecb")


@dataclass(slots=True)
class BatchSummary:
    cards: int = 0
    opened: int = 0
    failed: int = 0
    no_account: int = 0


def personalize_batch(
    batch: AccountBatch,
    plan: BankPlan,
    store: KeyStore,
    cards: Iterator[Transport],
    out: AccountSink,
    *,
    host_keys: HostKeys | None = None,
    handover: Handover | None = None,
    on_card: Callable[[bytes, str, str], None] | None = None,
    registry: Callable[[AccountRecord, bool, str], None] | None = None,
    stop_after_auth_failures: int = 3,
) -> BatchSummary:
    """Personalize every card ``cards`` yields; one account-opening row per card.

    Outcomes: ``account_opened``; ``account_failed`` (the card refused, its data or the
    issuer's check failed: the registry hears of it, a temporary card follows); ``card_error``
    (the reader or the card went away: present the card again, the run resumes it);
    ``no_account``. A key-store or usage error stops the batch, and so do
    ``stop_after_auth_failures`` cards in a row whose domain the transport keys do not open
    (wrong batch or wrong bank keys: every further card would fail the same way)."""
    host = IssuerHost(store, host_keys or HostKeys())
    plan = plan_oda(plan, batch, store)
    summary = BatchSummary()
    auth_failures = 0
    for transport in cards:
        summary.cards += 1
        serial = b""
        rec: AccountRecord | None = None
        try:
            serial = drive(read_serial(), transport.transmit)
            rec = batch.match(serial, handover)
            result = drive(bank_card(batch, plan, store, host, handover), transport.transmit)
        except NoAccount as exc:
            summary.no_account += 1
            out.add(None, serial, "no_account", exc.reason)
            _tell(on_card, serial, "no_account", exc.reason)
            continue
        except (KeyStoreError, UsageError):
            raise
        except TransportError as exc:
            summary.failed += 1
            out.add(rec, serial, "card_error", str(exc))
            _tell(on_card, serial, "card_error", str(exc))
            continue
        except CardPersoError as exc:
            summary.failed += 1
            reason = str(exc)
            out.add(rec, serial, "account_failed", reason)
            _tell(on_card, serial, "account_failed", reason)
            if registry is not None and rec is not None:
                registry(rec, False, reason)
            auth_failures = auth_failures + 1 if isinstance(exc, CryptogramMismatch) else 0
            if auth_failures >= stop_after_auth_failures:
                raise SecurityError(
                    f"{auth_failures} cards in a row refused the SSD transport keys: wrong "
                    "batch (--transport file) or wrong bank keys; the batch stops"
                ) from None
            continue
        auth_failures = 0
        summary.opened += 1
        out.add(rec, serial, "account_opened")
        _tell(on_card, serial, "account_opened", result.pan_masked)
        if registry is not None and rec is not None:
            registry(rec, True, "")
    return summary


class _LockedAccounts:
    """An account-opening file shared by several station threads."""

    def __init__(self, out: AccountFile, lock: threading.Lock) -> None:
        self._out, self._lock = out, lock

    def add(self, rec: AccountRecord | None, serial: bytes, outcome: str, reason: str = "") -> None:
        with self._lock:
            self._out.add(rec, serial, outcome, reason)


def personalize_stations(
    batch: AccountBatch,
    plan: BankPlan,
    store: KeyStore,
    stations: Sequence[Iterator[Transport]],
    out: AccountFile,
    *,
    host_keys: HostKeys | None = None,
    handover: Handover | None = None,
    on_card: Callable[[bytes, str, str], None] | None = None,
    registry: Callable[[AccountRecord, bool, str], None] | None = None,
) -> BatchSummary:
    """:func:`personalize_batch` on several readers at once, one thread per station (each
    station's card iterator is consumed by its own thread: PC/SC contexts stay with it). The
    account-opening file, the registry and ``on_card`` are called under one lock."""
    plan = plan_oda(plan, batch, store)  # once for every station
    lock = threading.Lock()
    shared = _LockedAccounts(out, lock)

    def locked(fn: Callable[..., None] | None) -> Callable[..., None] | None:
        if fn is None:
            return None
        f = fn

        def call(*args: Any) -> None:
            with lock:
                f(*args)

        return call

    results: list[BatchSummary | BaseException] = [BatchSummary() for _ in stations]

    def work(i: int, cards: Iterator[Transport]) -> None:
        try:
            results[i] = personalize_batch(
                batch, plan, store, cards, shared,
                host_keys=host_keys, handover=handover, on_card=locked(on_card),
                registry=locked(registry),
            )  # fmt: skip
        except BaseException as exc:  # re-raised in the caller's thread
            results[i] = exc

    threads = [
        threading.Thread(target=work, args=(i, cards), name=f"bank-station-{i}", daemon=True)
        for i, cards in enumerate(stations)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = BatchSummary()
    for r in results:
        if isinstance(r, BaseException):
            raise r
        total.cards += r.cards
        total.opened += r.opened
        total.failed += r.failed
        total.no_account += r.no_account
    return total


def _tell(on_card: Callable[[bytes, str, str], None] | None, serial: bytes, o: str, r: str) -> None:
    log.info("chip %s: %s %s", serial.hex().upper(), o, r)
    if on_card is not None:
        on_card(serial, o, r)
