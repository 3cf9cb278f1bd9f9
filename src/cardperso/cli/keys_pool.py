"""``cardperso keys pool generate|status|prune``: the ICC key pool (``docs/keystore.md``).

A key store's pools live beside it, in ``KEYSTORE.icc-pool/rsa<bits>`` (``--pool-dir`` names
another root; for ``pkcs11:CONFIG`` the root is ``CONFIG.icc-pool``); ``--type sm2`` is the
pool of SM2 key pairs for the PKI application's imported signing keys,
``KEYSTORE.icc-pool/sm2`` (docs/pki.md). Nothing here prints key material: counts, sizes, the
KEK's name and check value.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import click

from cardperso.cli.keys import PKCS11_PREFIX, keys_group, open_store
from cardperso.cli.main import stop_on_signal
from cardperso.errors import UsageError
from cardperso.keystore.base import DEFAULT_KEK
from cardperso.keystore.pool import IccKeyPool, PoolStatus
from cardperso.keystore.poolgen import fill, open_or_create

__all__ = ["pool_directory", "pool_group"]

EXPONENTS = ("3", "65537")


def pool_root(store_spec: str, root: Path | None = None) -> Path:
    """Where a key store's pools live: ``root``, or ``KEYSTORE.icc-pool`` beside the store
    (the configuration file for ``pkcs11:CONFIG``)."""
    if root is not None:
        return root
    path = store_spec[len(PKCS11_PREFIX) :] if store_spec.startswith(PKCS11_PREFIX) else store_spec
    return Path(path + ".icc-pool")


def pool_directory(store_spec: str, bits: int, exponent: int = 3, root: Path | None = None) -> Path:
    """The pool of ``bits``-bit keys (public exponent ``exponent``) of a key store."""
    name = f"rsa{bits}" if exponent == 3 else f"rsa{bits}-e{exponent}"
    return pool_root(store_spec, root) / name


@click.group("pool")
def pool_group() -> None:
    """The ICC key pool: RSA key pairs for offline data authentication, made ahead of time."""


_root_option = click.option(
    "--pool-dir",
    "root",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the pools (default: KEYSTORE.icc-pool beside the key store).",
)


_type_option = click.option(
    "--type",
    "kind",
    type=click.Choice(("rsa", "sm2")),
    default="rsa",
    show_default=True,
    help="rsa: ICC keys for ODA; sm2: the PKI application's imported signing keys.",
)


@pool_group.command("generate")
@click.argument("store_spec", metavar="KEYSTORE")
@click.option("--bits", type=click.IntRange(1024, 2048), default=None, help="ICC key size (rsa).")
@_type_option
@click.option(
    "--count",
    required=True,
    type=click.IntRange(0, 100_000_000),
    help="Free keys the pool holds at the end (a rerun generates only what is missing).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes (default: every core).",
)
@click.option("--exponent", type=click.Choice(EXPONENTS), default="3", help="Public exponent.")
@click.option("--kek", default=DEFAULT_KEK, show_default=True, help="Key-store KEK of the pool.")
@_root_option
def generate_cmd(
    store_spec: str,
    bits: int,
    count: int,
    workers: int | None,
    exponent: str,
    kek: str,
    root: Path | None,
    kind: str = "rsa",
) -> None:
    """Fill the pool of BITS-bit ICC keys until it holds COUNT free keys, with every core.

    Private parts are stored encrypted under the key store's KEK (files 0600, directory
    0700). Interruptible (Ctrl-C, SIGTERM: finished keys are kept, nothing is half-written)
    and resumable (run the same command again).
    """
    if kind == "sm2":
        if bits is not None:
            raise UsageError("--bits is for RSA pools: an SM2 pool holds 256-bit keys")
        bits, exponent, directory = 256, "0", pool_root(store_spec, root) / "sm2"
    elif bits is None:
        raise UsageError("--bits is required for an RSA pool (or give --type sm2)")
    elif bits % 16:
        raise UsageError("--bits must be a multiple of 16 (the CRT halves are whole bytes)")
    else:
        directory = pool_directory(store_spec, bits, int(exponent), root)
    n = workers or os.cpu_count() or 1
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open_store(store_spec) as store:
        pool = open_or_create(
            directory, store, bits=bits, exponent=int(exponent), kek=kek, kind=kind
        )
    opener = functools.partial(open_store, store_spec)
    step = max(1, count // 10)
    seen = [0]

    def progress(made: int) -> None:
        if made - seen[0] >= step:
            seen[0] = made
            click.echo(f"  {made:,} keys committed", err=True)

    with stop_on_signal():
        result = fill(pool, opener, count=count, workers=n, progress=progress)
    rate = result.generated / result.seconds if result.seconds else 0.0
    click.echo(
        f"generated {result.generated:,} {'SM2' if kind == 'sm2' else f'{bits}-bit'} keys in {result.seconds:.1f} s "
        f"({rate:.1f} keys/s, {n} workers); pool {directory}: {result.free:,} free of "
        f"{result.total:,}"
    )


def _print(status: PoolStatus) -> None:
    if status.kind == "sm2":
        click.echo(
            f"{status.directory}: SM2 key pairs, KEK {status.kek} "
            f"({status.kek_algorithm}, kcv {status.kek_kcv.hex().upper()})"
        )
    else:
        click.echo(
            f"{status.directory}: {status.bits} bits, e={status.exponent}, KEK {status.kek} "
            f"({status.kek_algorithm}, kcv {status.kek_kcv.hex().upper()})"
        )
    click.echo(
        f"  total {status.total:,}  used {status.used:,}  free {status.free:,}  "
        f"(segments {status.segments}, reservations {status.reservations}, "
        f"pruned {status.pruned:,})"
    )


@pool_group.command("status")
@click.argument("store_spec", metavar="KEYSTORE")
@click.option("--bits", type=int, default=None, help="Only the pool of this key size.")
@click.option("--type", "kind", type=click.Choice(("rsa", "sm2")), default=None,
              help="Only the pools of this key type.")  # fmt: skip
@_root_option
def status_cmd(
    store_spec: str, bits: int | None, root: Path | None, kind: str | None = None
) -> None:
    """Counts of each pool of the key store (total, used, free), its key size and KEK; never
    key material."""
    base = pool_root(store_spec, root)
    if bits is not None:
        dirs = [d for d in (pool_directory(store_spec, bits, e, root) for e in (3, 65537))]
        dirs = [d for d in dirs if d.is_dir()] or dirs[:1]
    else:
        patterns = {"rsa": ("rsa*",), "sm2": ("sm2",), None: ("rsa*", "sm2")}[kind]
        found = (d for pat in patterns for d in base.glob(pat)) if base.is_dir() else ()
        dirs = sorted(d for d in found if d.is_dir())
    if not dirs:
        raise UsageError(f"no ICC key pool in {base}: make one with `cardperso keys pool generate`")
    for d in dirs:
        _print(IccKeyPool(d).status())


@pool_group.command("prune")
@click.argument("store_spec", metavar="KEYSTORE")
@click.option("--bits", required=True, type=int, help="The pool of this key size.")
@click.option("--exponent", type=click.Choice(EXPONENTS), default="3", help="Public exponent.")
@click.option(
    "--older-than",
    "hours",
    type=click.FloatRange(0),
    default=24.0,
    show_default=True,
    help="Hours since the reservations that took the keys (their runs are over).",
)
@_root_option
def prune_cmd(store_spec: str, bits: int, exponent: str, hours: float, root: Path | None) -> None:
    """Delete the pool files whose keys were all handed out more than HOURS ago (the keys are on
    cards; the pool need not keep them, even encrypted). Never touches a free key."""
    pool = IccKeyPool(pool_directory(store_spec, bits, int(exponent), root))
    segments, keys = pool.prune(hours * 3600)
    click.echo(f"pruned {keys:,} handed-out keys ({segments} segment files) from {pool.directory}")
    _print(pool.status())


keys_group.add_command(pool_group)
