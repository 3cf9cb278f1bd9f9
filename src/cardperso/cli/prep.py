"""``cardperso prep``, ``cardperso validate`` and ``cardperso perso-file verify|show``.

Data preparation turns a batch of cardholder records into a protected personalization file
(``docs/prep.md``). Totals are printed at the end, always with read = prepared + rejected; the
exit code is 0 when every record was prepared, 1 when some were rejected (the file is still
written for the good ones), 2 for usage errors.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cardperso.cli.keys import PKCS11_PREFIX, open_store
from cardperso.cli.main import stop_on_signal
from cardperso.cli.production import check_production, production_options
from cardperso.codec.numbers import mask_id
from cardperso.errors import UsageError
from cardperso.keystore import KeyStore
from cardperso.layouts.persofile import check_created
from cardperso.outputs import check_paths
from cardperso.prep import verify_split
from cardperso.prep.container import iter_records, iter_sealed, read_header
from cardperso.prep.pipeline import (
    PrepOptions,
    PrepSummary,
    check_workers,
    prepare,
    validate_only,
)
from cardperso.profiles.loader import load_profile

__all__ = ["COMMANDS"]

log = logging.getLogger("cardperso.prep")

#: Bytes read from a ``--pin-seed file:PATH`` (its first line is the hex seed).
_PIN_SEED_FILE_MAX = 4096


def _pin_seed(text: str) -> bytes:
    """The PIN seed from ``env:VAR`` or ``file:PATH`` (hex, first line of a file only its owner
    may read), or hex given on the command line (visible in the process list and the shell
    history: logged as a warning). The value is never repeated in a message."""
    kind, sep, where = text.partition(":")
    if sep and kind == "env":
        value = os.environ.get(where, "")
        if not value:
            raise UsageError(f"--pin-seed env:{where}: the variable is not set")
    elif sep and kind == "file":
        path = Path(where)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"--pin-seed file {path} is not a regular file")
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UsageError(f"--pin-seed file {path} is readable by others: chmod 600 it")
            with open(path, "rb") as fh:
                head = fh.read(_PIN_SEED_FILE_MAX)
        except OSError as exc:
            raise UsageError(f"--pin-seed file {path}: {exc.strerror}") from None
        lines = head.decode("ascii", errors="replace").splitlines()
        value = lines[0] if lines else ""
    else:
        log.warning(
            "--pin-seed given on the command line (visible to other users and in shell history);"
            " use --pin-seed env:VAR or file:PATH"
        )
        value = text
    try:
        seed = bytes.fromhex(value.strip())
    except ValueError:
        raise UsageError("--pin-seed must be hex") from None
    if len(seed) < 16:
        raise UsageError("--pin-seed must be at least 16 bytes")
    return seed


def _parse_created(value: str | None, input_path: str) -> int:
    """Unix seconds from ``--created`` (ISO 8601 or digits), default the input's mtime; checked
    against what the personalization file's header can hold."""
    if value is None:
        created = int(os.stat(input_path).st_mtime)
    else:
        text = value.strip()
        try:
            if text.isascii() and text.isdigit() and len(text) <= 20:
                created = int(text)
            else:
                dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=datetime.UTC)
                created = int(dt.timestamp())
        except (ValueError, OverflowError):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise UsageError(f"--created {shown!r}: expected ISO 8601 or Unix seconds") from None
    check_created(created)
    return created


def _regular_input(path: str, role: str) -> None:
    """Refuse an input that is not a regular file (a FIFO or device is read twice, or never
    ends)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"{role} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{role} {path} is not a regular file")


def _store_path(keys_spec: str) -> str:
    """The file behind a key-store spec: the JSON store, or a PKCS#11 store's configuration."""
    return keys_spec.removeprefix(PKCS11_PREFIX)


def _open_store(keys_spec: str) -> KeyStore:
    """The key store, once its file is known to be a regular file (not a FIFO or a device)."""
    _regular_input(_store_path(keys_spec), "--keys")
    return open_store(keys_spec)


def _pin_seed_path(pin_seed: str | None) -> str | None:
    kind, sep, where = (pin_seed or "").partition(":")
    return where if sep and kind == "file" else None


def _progress(total_hint: int | None, unit: str) -> tuple[Callable[[int], None] | None, Any]:
    """A tqdm progress bar on a terminal (never in CI); None otherwise."""
    if os.environ.get("CI") or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total_hint, unit=unit, unit_scale=True, file=sys.stderr, leave=False)

    def update(n: int) -> None:
        bar.update(n)

    return update, bar


def _report(summary: PrepSummary, what: str) -> None:
    rate = f", {summary.rate:,.0f} records/s" if summary.seconds else ""
    click.echo(
        f"{what}: read {summary.read}, {'prepared' if what == 'prep' else 'valid'} "
        f"{summary.prepared}, rejected {summary.rejected} "
        f"({summary.seconds:.2f} s{rate})"
    )
    if summary.reasons:
        top = ", ".join(f"{k} {n}" for k, n in summary.reasons.most_common())
        click.echo(f"rejects by field: {top}")


@click.command("prep")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--profile", "-p", "profile_name", required=True, help="Profile name or YAML file.")
@click.option("--keys", "-k", "keys_spec", required=True, help="Key store (file or pkcs11:CONFIG).")
@click.option("--out", "-o", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--rejects",
    "-r",
    "rejects_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Rejects file (.csv or .jsonl).",
)
@click.option(
    "--workers",
    "-w",
    type=int,
    default=1,
    show_default=True,
    help="Processes preparing (1-64; the main one is one of them).",
)
@click.option("--batch-id", default=None, help="Batch id (default: the input file name).")
@click.option(
    "--created",
    default=None,
    help="Creation time (ISO 8601 or Unix seconds; default: the input file's mtime).",
)
@click.option(
    "--pin-seed",
    default=None,
    help="PIN seed: env:VAR or file:PATH holding hex (default: derived from the KEK).",
)
@click.option("--chunk-size", type=int, default=1000, show_default=True)
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]), default=None)
@click.option(
    "--icc-pool",
    default=None,
    type=click.Path(file_okay=False),
    help="ICC key pool of a profile with ODA (default: KEYSTORE.icc-pool/rsa<icc_bits>).",
)
@production_options
def prep_cmd(
    input_path: str,
    profile_name: str,
    keys_spec: str,
    out_path: str,
    rejects_path: str,
    workers: int,
    batch_id: str | None,
    created: str | None,
    pin_seed: str | None,
    chunk_size: int,
    input_format: str | None,
    icc_pool: str | None,
    production: bool,
    allow_software_keystore: bool,
) -> None:
    """Prepare a batch: INPUT records in, a protected personalization file out.

    The personalization file and the rejects file appear under their names only when the
    whole batch is done. SIGTERM stops prep cleanly (nothing written, exit 143); a process
    killed outright may leave a hidden ``.NAME.*.part`` file beside the output, safe to delete.
    An output that is an input (the batch, the key store, the profile) is refused.
    """
    _regular_input(input_path, "INPUT")
    try:
        options = PrepOptions(  # checks batch id, creation time, workers, chunk size
            batch_id=batch_id or Path(input_path).stem,
            created=_parse_created(created, input_path),
            workers=workers,
            chunk_size=chunk_size,
            input_format=input_format,
        )
    except UsageError as exc:
        if batch_id or not str(exc).startswith("--batch-id"):
            raise
        raise UsageError(
            f"the input file's name cannot be the batch id ({str(exc).removeprefix('--batch-id ')}"
            "): pass --batch-id"
        ) from None
    profile = load_profile(profile_name)
    check_paths(
        outputs={"--out": out_path, "--rejects": rejects_path},
        inputs={
            "INPUT": input_path,
            "--keys": _store_path(keys_spec),
            "--profile": profile.source,
            "--pin-seed": _pin_seed_path(pin_seed),
        },
    )
    store = _open_store(keys_spec)
    check_production(
        store,
        production=production or profile.production,
        allow_software_keystore=allow_software_keystore,
        what=f"prep {Path(input_path).name}",
    )
    if pin_seed is not None:
        options = dataclasses.replace(options, pin_seed=_pin_seed(pin_seed))
    oda = profile.pboc.oda if profile.pboc is not None else None
    if oda is not None:  # the ICC keys of offline data authentication (prep.oda_run)
        from cardperso.cli.keys_pool import pool_directory

        pool = icc_pool or str(pool_directory(keys_spec, oda.icc_bits))
        if icc_pool or Path(pool).exists() or not store.info(profile.transport_kek).test_key:
            options = dataclasses.replace(options, icc_pool=pool)
        else:  # test keys (the sample store) without a pool: this run makes its own keys
            logging.getLogger(__name__).info(
                "no ICC key pool at %s: this run makes its own ICC keys (test keys only)", pool
            )
    update, bar = _progress(None, "rec")
    with stop_on_signal():
        try:
            summary = prepare(
                input_path,
                profile,
                store,
                functools.partial(open_store, keys_spec),
                out_path,
                rejects_path,
                options,
                progress=update,
            )
        finally:
            if bar is not None:
                bar.close()
    _report(summary, "prep")
    click.echo(f"wrote {out_path} ({summary.prepared} records); rejects in {rejects_path}")
    if summary.rejected:
        sys.exit(1)


@click.command("validate")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--profile", "-p", "profile_name", required=True, help="Profile name or YAML file.")
@click.option("--rejects", "-r", "rejects_path", default=None, type=click.Path(dir_okay=False))
@click.option(
    "--workers", "-w", type=int, default=1, show_default=True, help="Worker processes (1-64)."
)
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]), default=None)
def validate_cmd(
    input_path: str,
    profile_name: str,
    rejects_path: str | None,
    workers: int,
    input_format: str | None,
) -> None:
    """Check a batch against a profile without preparing it (no keys needed)."""
    _regular_input(input_path, "INPUT")
    check_workers(workers)
    profile = load_profile(profile_name)
    check_paths(
        outputs={"--rejects": rejects_path},
        inputs={"INPUT": input_path, "--profile": profile.source},
    )
    update, bar = _progress(None, "rec")
    with stop_on_signal():
        try:
            summary = validate_only(
                input_path,
                profile,
                rejects_path,
                workers=workers,
                input_format=input_format,
                progress=update,
            )
        finally:
            if bar is not None:
                bar.close()
    _report(summary, "validate")
    if summary.rejected:
        if rejects_path:
            click.echo(f"rejects in {rejects_path}")
        sys.exit(1)


@click.group("perso-file")
def perso_file() -> None:
    """Check and list personalization files."""


@perso_file.command("verify")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--keys", "-k", "keys_spec", required=True, help="Key store holding the KEK.")
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 2),
    default=2,
    show_default=True,
    help="Processes checking the records (2: each half of a file of 8 MB or more).",
)
def verify_cmd(path: str, keys_spec: str, workers: int) -> None:
    """Check every MAC, the order and the counts (refuses tampered, truncated, mixed files)."""
    _regular_input(path, "FILE")
    store = _open_store(keys_spec)
    result = verify_split.verify(path, store, workers)
    h = result.header
    click.echo(
        f"{path}: OK - batch {h.batch_id!r}, profile {h.profile}, {result.records} records, "
        f"{result.size} bytes, KEK {h.kek_name} KCV {h.kek_kcv.hex().upper()}"
    )


def _header_json(h: Any) -> dict[str, Any]:
    return {
        "version": h.version,
        "batch_id": h.batch_id,
        "profile": h.profile,
        "profile_digest": h.profile_digest.hex(),
        "created": datetime.datetime.fromtimestamp(h.created, datetime.UTC).isoformat(),
        "records": h.record_count,
        "read": h.read_count,
        "rejected": h.rejected_count,
        "kek": {"name": h.kek_name, "algorithm": h.kek_algorithm, "kcv": h.kek_kcv.hex().upper()},
        "mac_scheme": h.mac_scheme,
        "keys": [
            {"name": k.name, "algorithm": k.algorithm, "kcv": k.kcv.hex().upper()} for k in h.keys
        ],
        "applications": [
            {
                "name": a.name,
                "aid": a.aid.hex().upper(),
                "encrypted_dgis": [f"{d:04X}" for d in a.secret_dgis],
            }
            for a in h.apps
        ],
    }


def _dgi_list(stream: bytes) -> list[str]:
    from cardperso.codec.dgi import iter_dgis

    return [f"{d:04X}" for d, _ in iter_dgis(stream)]


@perso_file.command("show")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line.")
@click.option("--limit", type=int, default=None, help="Show at most this many records.")
@click.option(
    "--keys",
    "-k",
    "keys_spec",
    default=None,
    help="Key store holding the KEK: also open the records (masked PAN, card id, DGI lists).",
)
def show_cmd(path: str, as_json: bool, limit: int | None, keys_spec: str | None) -> None:
    """List the header and the records: card number and masked identity number; with
    ``--keys`` also the masked PAN, the card identification code and the DGI lists.

    Never shows key values, PIN blocks or whole identity numbers. Does not verify MACs: run
    ``perso-file verify`` for that.
    """
    _regular_input(path, "FILE")
    with open(path, "rb") as fh:
        header, _raw = read_header(fh)
    head = _header_json(header)
    if as_json:
        click.echo(json.dumps({"header": head}, ensure_ascii=False))
    else:
        click.echo(
            f"batch {header.batch_id!r}  profile {header.profile}  records {header.record_count}"
            f"  (read {header.read_count}, rejected {header.rejected_count})  created "
            f"{head['created']}"
        )
        for k in head["keys"]:
            click.echo(f"  key {k['name']:<22} {k['algorithm']:<4} KCV {k['kcv']}")
    if keys_spec is None:
        for seq, (line, sealed) in enumerate(iter_sealed(path)):
            if limit is not None and seq >= limit:
                break
            row: dict[str, Any] = {
                "seq": seq,
                "line": line,
                "card_no": sealed.card_no,
                "ssn": sealed.ssn_masked,
            }
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(f"{seq:>7} line {line:<7} {sealed.card_no} {sealed.ssn_masked}")
        return
    store = _open_store(keys_spec)
    for seq, (line, rec) in enumerate(iter_records(path, store)):
        if limit is not None and seq >= limit:
            break
        apps = {a.aid.hex().upper(): _dgi_list(a.dgis) for a in rec.apps}
        row = {
            "seq": seq,
            "line": line,
            "card_no": rec.card_no,
            "ssn": mask_id(rec.ssn),
            "pan": mask_id(rec.pan) if rec.pan else "",
            "card_id": rec.card_id.hex().upper(),
            "dgis": apps,
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            dg = "; ".join(f"{aid[:8]}…: {' '.join(d)}" for aid, d in apps.items())
            click.echo(
                f"{seq:>7} line {line:<7} {rec.card_no} {row['ssn']} {row['pan'] or '-':<19} {dg}"
            )


COMMANDS = [prep_cmd, validate_cmd, perso_file]
