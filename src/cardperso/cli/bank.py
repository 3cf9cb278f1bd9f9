"""``cardperso bank …``: the bank stage: issuer host, EC balance / load, card checks, and the
bank's personalization of two-stage cards (docs/bank.md)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from cardperso.bank import qpboc, terminal
from cardperso.bank.accounts import CardRowsFile, read_handover, ssn_digester
from cardperso.bank.host import AuthRequest, HostKeys, IssuerHost
from cardperso.bank.registry_link import RegistryRecorder
from cardperso.bank.twostage import TransportDelivery, load_two_stage, make_delivery
from cardperso.chip.transport import Flow, drive
from cardperso.cli import bank_kernel as _kernel_cli
from cardperso.cli.keys import PKCS11_PREFIX, open_store
from cardperso.cli.production import check_production, production_options
from cardperso.errors import CardPersoError, DataError, KeyStoreError, TransportError, UsageError
from cardperso.keystore.base import DEFAULT_KEK
from cardperso.keystore.software import read_small_text
from cardperso.outputs import atomic_write_text, check_output_dirs, check_paths

log = logging.getLogger(__name__)

__all__ = ["COMMANDS"]

_T = TypeVar("_T")


def _hex(text: str, what: str, length: int | None = None) -> bytes:
    try:
        value = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise UsageError(f"{what}: not hex") from None
    if length is not None and len(value) != length:
        raise UsageError(f"{what}: must be {length} bytes")
    return value


def _store_file(keys_spec: str) -> Path:
    """The file behind a key-store spec: the JSON store, or a PKCS#11 store's configuration."""
    return Path(keys_spec.removeprefix(PKCS11_PREFIX))


def _outputs(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """Refuse, before anything is opened, an output that is an input or another output, or
    whose directory does not exist."""
    check_paths(outputs=outputs, inputs=inputs)
    check_output_dirs(outputs.items())


def _read_delivery(path: Path) -> TransportDelivery:
    """The transport-key delivery file: a small regular file (64 KiB at most), read whole."""
    return TransportDelivery.from_json(
        read_small_text(path, 64 * 1024, f"delivery {path}"), str(path)
    )


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _on_reader(reader: str, flow: Flow[_T]) -> _T:
    from cardperso.devices import pcsc

    # -vv: the APDU trace (secrets and records redacted) goes to the debug log, as for the line
    trace = pcsc.log_trace() if pcsc.log.isEnabledFor(logging.DEBUG) else None
    with pcsc.PcscTransport(reader, trace=trace) as transport:
        return drive(flow, transport.transmit)


def _host(
    keys_spec: str, imk_ac: str, imk_smi: str, production: bool, allow_software: bool
) -> IssuerHost:
    store = open_store(keys_spec)
    check_production(
        store, production=production, allow_software_keystore=allow_software, what="issuer host"
    )
    return IssuerHost(store, HostKeys(imk_ac=imk_ac, imk_smi=imk_smi))


def _key_options(f: Callable[..., None]) -> Callable[..., None]:
    f = production_options(f)
    f = click.option("--imk-smi", default="pboc-imk-smi", show_default=True)(f)
    f = click.option("--imk-ac", default="pboc-imk-ac", show_default=True)(f)
    return click.option(
        "--keys", "-k", "keys_spec", required=True, help="Bank key store (file or pkcs11:CONFIG)."
    )(f)


@click.group("bank")
def bank_group() -> None:
    """The bank stage: issuer host, electronic cash, bank personalization."""


# -- issuer host ---------------------------------------------------------------------------------


@bank_group.group("host")
def host_group() -> None:
    """Issuer-host operations (keys used inside the bank's key store)."""


def _request(pan: str, psn: str, atc: str, arqc: str, data: str, iad: str) -> AuthRequest:
    return AuthRequest(
        pan, psn, _hex(atc, "--atc", 2), _hex(arqc, "--arqc", 8), _hex(data, "--data"),
        _hex(iad, "--iad"),
    )  # fmt: skip


_REQ_OPTIONS = [
    click.option("--pan", required=True),
    click.option("--psn", default="00", show_default=True),
    click.option("--atc", required=True, help="2 bytes, hex"),
    click.option("--arqc", required=True, help="8 bytes, hex"),
    click.option(
        "--iad",
        default="",
        help="the card's 9F10, hex: its CVN picks the session key (PBOC's for CVN 01/17, else "
        "the EMV common session key); without it, PBOC's",
    ),
]


def _req_options(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(_REQ_OPTIONS):
        f = opt(f)
    return f


@host_group.command("verify-arqc")
@_key_options
@_req_options
@click.option(
    "--data",
    required=True,
    help="cryptogram input as the card MACed it, hex: PBOC (CVN 01/17) 9F02 9F03 9F1A 95 5F2A 9A "
    "9C 9F37 ‖ AIP ‖ ATC ‖ CVR; other CVNs CDOL1 data ‖ AIP ‖ ATC ‖ CVR",
)
@click.option("--arc", default="3030", show_default=True, help="ARC for the ARPC, hex")
def verify_arqc_cmd(
    keys_spec: str, imk_ac: str, imk_smi: str, production: bool, allow_software_keystore: bool,
    pan: str, psn: str, atc: str, arqc: str, iad: str, data: str, arc: str,
) -> None:  # fmt: skip
    """Verify an ARQC; print the ARPC (method 1). Exit 1 when it does not verify."""
    host = _host(keys_spec, imk_ac, imk_smi, production, allow_software_keystore)
    req = _request(pan, psn, atc, arqc, data, iad)
    host.verify(req)
    click.echo(f"ARQC verifies ({req.pan_masked}, ATC {atc.upper()})")
    click.echo(f"ARPC {host.arpc(req, _hex(arc, '--arc', 2)).hex().upper()}")


@host_group.command("script")
@_key_options
@_req_options
@click.option("--tag", type=click.Choice(["9F79", "9F77", "9F78", "9F6D"]), required=True)
@click.option("--amount", type=int, required=True, help="new value in fen")
def script_cmd(
    keys_spec: str, imk_ac: str, imk_smi: str, production: bool, allow_software_keystore: bool,
    pan: str, psn: str, atc: str, arqc: str, iad: str, tag: str, amount: int,
) -> None:  # fmt: skip
    """Print the issuer script PUT DATA TAG = AMOUNT with its MAC (SMI session key)."""
    host = _host(keys_spec, imk_ac, imk_smi, production, allow_software_keystore)
    req = _request(pan, psn, atc, arqc, "", iad)
    click.echo(host.put_data_script(req, int(tag, 16), amount).hex().upper())


# -- terminal flows ------------------------------------------------------------------------------


@bank_group.command("ec-balance")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--ppse", is_flag=True, help="select through the PPSE first")
def ec_balance_cmd(reader: str, ppse: bool) -> None:
    """Read the electronic-cash balance and limits of the card in READER."""
    got = _on_reader(reader, terminal.ec_balance("PPSE" if ppse else "PSE"))
    click.echo(f"balance          {_yuan(got.balance):>12} yuan")
    click.echo(f"balance limit    {_yuan(got.balance_limit):>12} yuan")
    click.echo(f"single limit     {_yuan(got.single_limit):>12} yuan")
    click.echo(f"reset threshold  {_yuan(got.reset_threshold):>12} yuan")


@bank_group.command("ec-load")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--amount", type=click.IntRange(min=1), required=True, help="amount in fen")
@_key_options
def ec_load_cmd(
    reader: str, amount: int, keys_spec: str, imk_ac: str, imk_smi: str, production: bool,
    allow_software_keystore: bool,
) -> None:  # fmt: skip
    """Load AMOUNT fen onto the card's electronic cash (online, issuer script)."""
    host = _host(keys_spec, imk_ac, imk_smi, production, allow_software_keystore)
    got = _on_reader(reader, terminal.ec_load(host, amount))
    click.echo(
        f"loaded {_yuan(amount)} yuan on {got.pan_masked}: balance {_yuan(got.balance_before)}"
        f" -> {_yuan(got.balance_after)} yuan (ATC {got.atc}, {got.second_cid})"
    )


@bank_group.command("qpboc-purchase")
@click.option("--reader", "-r", required=True, help="PC/SC reader name (a contactless reader)")
@click.option("--amount", type=click.IntRange(min=0), required=True, help="amount in fen")
@click.option("--online-required", is_flag=True, help="the reader asks an online cryptogram")
@click.option(
    "--keys", "-k", "keys_spec", default=None,
    help="Bank key store for the issuer host (file or pkcs11:CONFIG); without it the reader "
    "is offline-only",
)  # fmt: skip
@click.option("--imk-ac", default="pboc-imk-ac", show_default=True)
@click.option("--imk-smi", default="pboc-imk-smi", show_default=True)
@click.option(
    "--capk",
    "capk_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA public keys (keys export-capk): check the certificates and fDDA of an offline approval.",
)
@production_options
def qpboc_purchase_cmd(
    reader: str, amount: int, online_required: bool, keys_spec: str | None, imk_ac: str,
    imk_smi: str, capk_file: Path | None, production: bool, allow_software_keystore: bool,
) -> None:  # fmt: skip
    """A qPBOC contactless purchase of AMOUNT fen: approved offline from the electronic cash,
    online through the issuer host, or declined (docs/bank.md)."""
    if online_required and keys_spec is None:
        raise UsageError("--online-required needs --keys (an issuer host to go online to)")
    host = None
    if keys_spec is not None:
        host = _host(keys_spec, imk_ac, imk_smi, production, allow_software_keystore)
    capks = None if capk_file is None else _kernel_cli.load_capk_file(capk_file)
    got = _on_reader(reader, qpboc.qpboc_purchase(amount, host, online_required=online_required))
    available = "" if got.available is None else f", available {_yuan(got.available)} yuan"
    if got.cvm != "none":
        available += f", cardholder verification: {got.cvm}"
    click.echo(
        f"{got.outcome}: {_yuan(amount)} yuan on {got.pan_masked} ({got.cid}, ATC {got.atc}"
        f"{available}); checks {', '.join(got.checks)}"
    )
    if capks is not None:
        _kernel_cli.report_fdda(capks, got)


@bank_group.command("verify")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--ppse", is_flag=True, help="select through the PPSE first")
@click.option(
    "--capk",
    "capk_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA public keys (keys export-capk): act as a terminal kernel (ODA, ARQC, GET DATA).",
)
@click.option(
    "--oda",
    "oda_methods",
    default="sda,dda,cda",
    show_default=True,
    help="With --capk: the offline authentication methods this terminal supports.",
)
@_key_options
def verify_cmd(
    reader: str, ppse: bool, capk_file: Path | None, oda_methods: str, keys_spec: str,
    imk_ac: str, imk_smi: str, production: bool, allow_software_keystore: bool,
) -> None:  # fmt: skip
    """Quality control: PSE/PPSE selection, records, an ARQC verified by the issuer host; with
    ``--capk`` a terminal kernel that also checks offline data authentication and the card's
    risk-management data, one line per step (docs/bank.md)."""
    host = _host(keys_spec, imk_ac, imk_smi, production, allow_software_keystore)
    if capk_file is not None:
        prefer = "PPSE" if ppse else "PSE"
        _kernel_cli.run_kernel(reader, capk_file, host, prefer, _on_reader, oda_methods)
        return
    got = _on_reader(reader, terminal.verify_card(host, "PPSE" if ppse else "PSE"))
    click.echo(
        f"OK {got.pan_masked} AID {got.aid.hex().upper()} via {got.via}: {got.records} records,"
        f" checks {', '.join(got.checks)}"
    )


# -- two-stage personalization ---------------------------------------------------------------


@bank_group.command("transport-keys")
@click.option("--profile", "-p", "profile_name", required=True, help="two-stage profile")
@click.option("--keys", "-k", "keys_spec", required=True, help="Bank key store.")
@click.option("--batch", required=True, help="batch name (diversifies the transport keys)")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@production_options
def transport_keys_cmd(
    profile_name: str, keys_spec: str, batch: str, out: Path, production: bool,
    allow_software_keystore: bool,
) -> None:  # fmt: skip
    """Bank: the batch's SSD transport keys for the factory, wrapped under the key-exchange key."""
    _outputs({"--out": out}, {"--keys": _store_file(keys_spec)})
    two = load_two_stage(profile_name)
    store = open_store(keys_spec)
    check_production(
        store, production=production or two.bank.production or two.factory.production,
        allow_software_keystore=allow_software_keystore, what=f"bank transport-keys {batch}",
    )  # fmt: skip
    delivery = make_delivery(store, two, batch)
    atomic_write_text(out, delivery.to_json())
    click.echo(
        f"{out}: SSD {delivery.ssd_aid.hex().upper()} KVN {delivery.kvn:02X}, keys wrapped under "
        f"{delivery.kek} (KCV {delivery.kek_kcv.hex().upper()}); check values "
        + " ".join(k.kcv.hex().upper() for k in (delivery.enc, delivery.mac, delivery.dek))
    )


class _Budget:
    """How many cards may still be taken (``None``: no limit), shared by station threads."""

    def __init__(self, count: int | None) -> None:
        self.left = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.left is not None and self.left <= 0


def _reader_cards(
    readers: list[str], card_timeout: float, budget: _Budget
) -> Iterator[PcscTransportLike]:
    """Connected transports, one per card presented in any of ``readers`` (polled in turn);
    a reader whose card was done is skipped until it is seen empty. Stops when the budget is
    spent, or when no new card arrives for ``card_timeout`` seconds."""
    from cardperso.devices.pcsc import NoCard, PcscTransport, wait_for_card, wait_for_removal

    busy: set[str] = set()
    idle_since = time.monotonic()
    while not budget.exhausted:
        progressed = False
        for reader in readers:
            if reader in busy:
                try:
                    wait_for_removal(reader, 0.05)
                    busy.discard(reader)
                except TransportError:
                    continue
            try:
                wait_for_card(reader, 0.2)
            except NoCard:
                continue
            if not budget.take():
                return
            with PcscTransport(reader) as transport:
                yield transport
            busy.add(reader)
            progressed = True
            idle_since = time.monotonic()
        if not progressed and time.monotonic() - idle_since > card_timeout:
            return


PcscTransportLike = Any


@bank_group.command("factory")
@click.argument("perso_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reader", "-r", "readers", multiple=True, required=True, help="PC/SC reader(s)")
@click.option("--keys", "-k", "keys_spec", required=True, help="Factory key store.")
@click.option("--delivery", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="the bank's transport-key delivery file")  # fmt: skip
@click.option("--handover", type=click.Path(dir_okay=False, path_type=Path),
              help="write chip serial ↔ card id ↔ SSN digest for the bank")  # fmt: skip
@click.option("--count", type=click.IntRange(min=1), help="stop after N cards")
@click.option("--card-timeout", type=float, default=10.0, show_default=True)
@production_options
def factory_cmd(
    perso_file: Path, readers: tuple[str, ...], keys_spec: str, delivery: Path,
    handover: Path | None, count: int | None, card_timeout: float, production: bool,
    allow_software_keystore: bool,
) -> None:  # fmt: skip
    """Factory, desktop encoder: SSSE from PERSO_FILE, then the bank's SSD and the PBOC
    application installed under it, one record per card presented."""
    from cardperso.bank.factory import factory_card
    from cardperso.chip.plan import card_data, chip_plan
    from cardperso.prep.container import iter_records, verify

    _outputs(
        {"--handover": handover},
        {"PERSO_FILE": perso_file, "--keys": _store_file(keys_spec), "--delivery": delivery},
    )
    store = open_store(keys_spec)
    header = verify(perso_file, store).header
    two = load_two_stage(header.profile)
    check_production(
        store, production=production or two.factory.production,
        allow_software_keystore=allow_software_keystore, what=f"bank factory {perso_file}",
    )  # fmt: skip
    if two.factory.digest != header.profile_digest:
        raise DataError("the profile changed since the file was prepared", field="profile")
    plan = chip_plan(two.factory, header)
    sent = _read_delivery(delivery)
    records = enumerate(iter_records(perso_file))
    digest = ssn_digester(store, two.ssd.key_exchange_kek)
    rows = (
        CardRowsFile(handover, ("chip_serial", "card_id", "ssn_digest"))
        if handover is not None
        else None
    )
    made = rejected = 0
    pending = next(records, None)
    with rows if rows is not None else contextlib.nullcontext():
        for transport in _reader_cards(list(readers), card_timeout, _Budget(count)):
            if pending is None:
                break
            index, (line, body) = pending
            try:
                result = drive(
                    factory_card(two, card_data(header, body, index), plan, store, sent),
                    transport.transmit,
                )
            except (KeyStoreError, UsageError):
                raise
            except CardPersoError as exc:  # this card goes to the reject box; the record waits
                rejected += 1
                click.echo(f"line {line}: card rejected: {exc}", err=True)
                continue
            made += 1
            pending = next(records, None)
            serial = result.chip.chip_serial.hex().upper()
            if rows is not None:
                rows.write((serial, result.chip.card_id.hex().upper(), digest(body.ssn)))
            click.echo(
                f"line {line}: chip {serial} card {body.card_no}: SSSE done, bank SSD created"
            )
    click.echo(f"{made} card(s) made, {rejected} card(s) rejected")


def _registry_hook(db_url: str) -> RegistryRecorder:
    """Move the card's application to account_opened / account_failed in the registry."""
    from cardperso.registry import store as reg
    from cardperso.storage.db import connect

    return RegistryRecorder(reg.open_registry(connect(db_url)), reg.default_actor())


@bank_group.command("personalize")
@click.argument(
    "input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--profile", "-p", "profile_name", required=True, help="two-stage profile")
@click.option("--keys", "-k", "keys_spec", required=True, help="Bank key store.")
@click.option("--transport", "delivery", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the transport-key delivery file of the batch (or give --batch)")  # fmt: skip
@click.option(
    "--batch", "batch_name", help="the batch named at transport-keys (instead of --transport)"
)
@click.option("--line", "line_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the bank's line: every station's reader is used")  # fmt: skip
@click.option("--reader", "-r", "readers", multiple=True, help="PC/SC reader(s)")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("accounts.csv"), show_default=True, help="account-opening file")  # fmt: skip
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bank-rejects.csv"), show_default=True)  # fmt: skip
@click.option("--handover", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the factory's handover file (for rows that name cards by SSN)")  # fmt: skip
@click.option("--db", "db_url", help="registry database: cards move to account_opened/failed")
@click.option("--count", type=click.IntRange(min=1), help="stop after N cards")
@click.option("--card-timeout", type=float, default=10.0, show_default=True)
@click.option("--no-verify", is_flag=True, help="skip the read-back ARQC check")
@click.option("--icc-pool", type=click.Path(file_okay=False),
              help="the bank's ICC key pool, for a bank profile with ODA "
              "(default: KEYSTORE.icc-pool/rsa<icc_bits>)")  # fmt: skip
@production_options
def personalize_cmd(
    input_path: Path, profile_name: str, keys_spec: str, delivery: Path | None,
    batch_name: str | None, line_file: Path | None,
    readers: tuple[str, ...], out: Path, rejects: Path, handover: Path | None,
    db_url: str | None, count: int | None, card_timeout: float, no_verify: bool,
    icc_pool: str | None, production: bool, allow_software_keystore: bool,
) -> None:  # fmt: skip
    """Bank: personalize the PBOC application of two-stage cards and open their accounts."""
    from cardperso.bank.accounts import AccountFile, read_accounts
    from cardperso.bank.personalize import BankPlan, personalize_stations, pin_seed_for
    from cardperso.prep.rejects import RejectsWriter

    _outputs(
        {"--out": out, "--rejects": rejects},
        {"INPUT": input_path, "--keys": _store_file(keys_spec), "--transport": delivery,
         "--line": line_file, "--handover": handover},
    )  # fmt: skip
    names = list(readers)
    if line_file is not None:
        from cardperso.line.linefile import load_line

        names += [st.reader for st in load_line(line_file).stations]
    if not names:
        raise UsageError("give --reader or --line")
    two = load_two_stage(profile_name)
    assert two.bank.pboc is not None
    store = open_store(keys_spec)
    check_production(
        store, production=production or two.bank.production or two.factory.production,
        allow_software_keystore=allow_software_keystore, what=f"bank personalize {input_path}",
    )  # fmt: skip
    if (delivery is None) == (batch_name is None):
        raise UsageError("give exactly one of --transport FILE or --batch NAME")
    if delivery is not None:
        sent = _read_delivery(delivery)
        if sent.ssd_aid != two.ssd.aid:
            raise UsageError("the transport-key file is for another security domain")
        batch_name = sent.batch
    assert batch_name is not None
    writer = RejectsWriter(rejects)
    try:
        batch = read_accounts(input_path, two.bank.pboc, two.bank.pin.length, writer)
    except BaseException:
        writer.abort()  # a failed read leaves no rejects file under the name
        raise
    writer.close()
    click.echo(f"input: read {batch.read}, valid {len(batch)}, rejected {batch.rejected}")
    oda = two.bank.pboc.oda
    if oda is not None and icc_pool is None:  # the ICC keys of offline data authentication
        from cardperso.cli.keys_pool import pool_directory

        icc_pool = str(pool_directory(keys_spec, oda.icc_bits))
    plan = BankPlan(
        two, batch_name, pin_seed=pin_seed_for(store, DEFAULT_KEK, batch_name),
        verify=not no_verify, icc_pool=icc_pool,
    )  # fmt: skip
    mapping = (
        read_handover(handover, ssn_digester(store, two.ssd.key_exchange_kek))
        if handover is not None
        else None
    )
    hook = _registry_hook(db_url) if db_url else None

    def show(serial: bytes, outcome: str, detail: str) -> None:
        click.echo(f"chip {serial.hex().upper()}: {outcome} {detail}")
        if hook is not None:  # a no_account chip goes back to the registry (account_failed)
            hook.on_card(serial, outcome, detail)

    budget = _Budget(count)
    with AccountFile(out) as accounts:
        # one thread per reader (a line's stations work at once), each polling its own reader
        summary = personalize_stations(
            batch, plan, store, [_reader_cards([n], card_timeout, budget) for n in names],
            accounts, handover=mapping, on_card=show, registry=hook,
        )  # fmt: skip
    click.echo(
        f"cards {summary.cards}: accounts opened {summary.opened}, failed {summary.failed}, "
        f"no account data {summary.no_account}; account-opening file {out}"
    )
    if hook is not None:
        click.echo(f"registry: {hook.opened} opened, {hook.failed} failed")
        for problem in hook.problems:
            click.echo(f"registry: {problem}", err=True)
    if summary.failed or summary.no_account or batch.rejected:
        raise SystemExit(1)


COMMANDS = [bank_group]
