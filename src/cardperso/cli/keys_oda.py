"""``cardperso keys export-capk`` and ``keys oda-chain``: the ODA key chain of a key store.

``export-capk`` writes the CA public keys a terminal needs (docs/bank.md, the terminal kernel
reads them); ``oda-chain`` makes the test CA and the issuer key pair in a store that has none
(a token: generated inside it). Nothing here prints or writes private key material.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cardperso.cli.keys import PKCS11_PREFIX, keys_group, open_store
from cardperso.errors import UsageError
from cardperso.keystore.oda import CA_BITS, TEST_CA_INDEX, capks, create_chain
from cardperso.outputs import atomic_write_text, check_output_dirs, check_paths

__all__ = ["export_capk_cmd", "oda_chain_cmd"]


@keys_group.command("export-capk")
@click.argument("store_spec", metavar="KEYSTORE")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file to write: a list of {rid, index, modulus, exponent} (hex).",
)
def export_capk_cmd(store_spec: str, out: Path) -> None:
    """Write the CA public keys of KEYSTORE (its ``oda-ca-<RID>-<index>`` key pairs) as a
    terminal loads them: a JSON list of ``{"rid", "index", "modulus", "exponent"}`` (hex)."""
    inputs = {} if store_spec.startswith(PKCS11_PREFIX) else {"KEYSTORE": store_spec}
    check_paths({"--out": out}, inputs)
    check_output_dirs([("--out", out)])
    with open_store(store_spec) as store:
        keys = capks(store)
    if not keys:
        raise UsageError(
            f"{store_spec}: no CA key pair (oda-ca-<RID>-<index>); make one with "
            "`cardperso keys oda-chain`"
        )
    atomic_write_text(out, json.dumps([k.to_json() for k in keys], indent=2) + "\n", mode=0o644)
    for k in keys:
        click.echo(
            f"CAPK {k.rid.hex().upper()} {k.index:02X}: {len(k.modulus) * 8} bits, e={k.exponent}"
        )
    click.echo(f"wrote {len(keys)} CA public key(s) to {out}")


@keys_group.command("oda-chain")
@click.argument("store_spec", metavar="KEYSTORE")
@click.option(
    "--ca-index",
    default=f"{TEST_CA_INDEX:02X}",
    show_default=True,
    help="CA public key index (8F), two hex digits.",
)
@click.option(
    "--ca-bits",
    type=click.Choice([str(b) for b in CA_BITS]),
    default="1408",
    show_default=True,
)
@click.option("--issuer-bits", type=click.IntRange(1024, 1984), default=1408, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing CA / issuer key pairs.")
def oda_chain_cmd(
    store_spec: str, ca_index: str, ca_bits: str, issuer_bits: int, force: bool
) -> None:
    """Generate the ODA test CA (RID A000000333) and the issuer key pair in KEYSTORE (inside
    the token for pkcs11:CONFIG). Prints names and check values only."""
    try:
        index = int(ca_index, 16)
    except ValueError:
        raise UsageError("--ca-index takes two hex digits") from None
    if not (len(ca_index) == 2 and 0 <= index <= 0xFF):
        raise UsageError("--ca-index takes two hex digits")
    if issuer_bits % 16:
        raise UsageError("--issuer-bits must be a multiple of 16")
    with open_store(store_spec) as store:
        infos = create_chain(
            store, ca_index=index, ca_bits=int(ca_bits), issuer_bits=issuer_bits, replace=force
        )
    for info in infos:
        click.echo(f"{info.name:<24} RSA   KCV {info.kcv.hex().upper()}  in {info.location}")
