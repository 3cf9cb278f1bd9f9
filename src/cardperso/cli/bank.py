"""``cardperso bank …``: the bank stage: issuer host, EC balance / load, card checks, and the
bank's personalization of two-stage cards (docs/bank.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from cardperso.bank import terminal
from cardperso.bank.host import AuthRequest, HostKeys, IssuerHost
from cardperso.cli.keys import open_store
from cardperso.errors import UsageError

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


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _on_reader(reader: str, flow: terminal.Flow[_T]) -> _T:
    from cardperso.devices.pcsc import PcscTransport

    with PcscTransport(reader) as transport:
        return terminal.run(flow, transport.transmit)


def _host(keys_spec: str, imk_ac: str, imk_smi: str) -> IssuerHost:
    return IssuerHost(open_store(keys_spec), HostKeys(imk_ac=imk_ac, imk_smi=imk_smi))


def _key_options(f: Callable[..., None]) -> Callable[..., None]:
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


def _request(pan: str, psn: str, atc: str, arqc: str, data: str) -> AuthRequest:
    return AuthRequest(
        pan, psn, _hex(atc, "--atc", 2), _hex(arqc, "--arqc", 8), _hex(data, "--data")
    )


_REQ_OPTIONS = [
    click.option("--pan", required=True),
    click.option("--psn", default="00", show_default=True),
    click.option("--atc", required=True, help="2 bytes, hex"),
    click.option("--arqc", required=True, help="8 bytes, hex"),
]


def _req_options(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(_REQ_OPTIONS):
        f = opt(f)
    return f


@host_group.command("verify-arqc")
@_key_options
@_req_options
@click.option("--data", required=True, help="cryptogram input: CDOL1 data ‖ AIP ‖ ATC ‖ CVR, hex")
@click.option("--arc", default="3030", show_default=True, help="ARC for the ARPC, hex")
def verify_arqc_cmd(
    keys_spec: str, imk_ac: str, imk_smi: str, pan: str, psn: str, atc: str, arqc: str, data: str,
    arc: str,
) -> None:  # fmt: skip
    """Verify an ARQC; print the ARPC (method 1). Exit 1 when it does not verify."""
    host = _host(keys_spec, imk_ac, imk_smi)
    req = _request(pan, psn, atc, arqc, data)
    host.verify(req)
    click.echo(f"ARQC verifies ({req.pan_masked}, ATC {atc.upper()})")
    click.echo(f"ARPC {host.arpc(req, _hex(arc, '--arc', 2)).hex().upper()}")


@host_group.command("script")
@_key_options
@_req_options
@click.option("--tag", type=click.Choice(["9F79", "9F77", "9F78", "9F6D"]), required=True)
@click.option("--amount", type=int, required=True, help="new value in fen")
def script_cmd(
    keys_spec: str, imk_ac: str, imk_smi: str, pan: str, psn: str, atc: str, arqc: str, tag: str,
    amount: int,
) -> None:  # fmt: skip
    """Print the issuer script PUT DATA TAG = AMOUNT with its MAC (SMI session key)."""
    host = _host(keys_spec, imk_ac, imk_smi)
    req = _request(pan, psn, atc, arqc, "")
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
def ec_load_cmd(reader: str, amount: int, keys_spec: str, imk_ac: str, imk_smi: str) -> None:
    """Load AMOUNT fen onto the card's electronic cash (online, issuer script)."""
    host = _host(keys_spec, imk_ac, imk_smi)
    got = _on_reader(reader, terminal.ec_load(host, amount))
    click.echo(
        f"loaded {_yuan(amount)} yuan on {got.pan_masked}: balance {_yuan(got.balance_before)}"
        f" -> {_yuan(got.balance_after)} yuan (ATC {got.atc}, {got.second_cid})"
    )


@bank_group.command("verify")
@click.option("--reader", "-r", required=True, help="PC/SC reader name")
@click.option("--ppse", is_flag=True, help="select through the PPSE first")
@_key_options
def verify_cmd(reader: str, ppse: bool, keys_spec: str, imk_ac: str, imk_smi: str) -> None:
    """Quality control: PSE/PPSE selection, records, an ARQC verified by the issuer host."""
    host = _host(keys_spec, imk_ac, imk_smi)
    got = _on_reader(reader, terminal.verify_card(host, "PPSE" if ppse else "PSE"))
    click.echo(
        f"OK {got.pan_masked} AID {got.aid.hex().upper()} via {got.via}: {got.records} records,"
        f" checks {', '.join(got.checks)}"
    )


COMMANDS = [bank_group]
