"""``cardperso prep``, ``cardperso validate`` and ``cardperso perso-file verify|show``.

Data preparation turns a batch of cardholder records into a protected personalization file
(``docs/prep.md``). Totals are printed at the end, always with read = prepared + rejected; the
exit code is 0 when every record was prepared, 1 when some were rejected (the file is still
written for the good ones), 2 for usage errors.
"""

from __future__ import annotations

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

from cardperso.cli.keys import open_store
from cardperso.cli.production import check_production, production_options
from cardperso.codec.numbers import mask_id
from cardperso.errors import UsageError
from cardperso.prep.container import iter_records, iter_sealed, read_header, verify
from cardperso.prep.pipeline import PrepOptions, PrepSummary, prepare, validate_only
from cardperso.profiles.loader import load_profile

__all__ = ["COMMANDS"]

log = logging.getLogger("cardperso.prep")


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
            if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UsageError(f"--pin-seed file {path} is readable by others: chmod 600 it")
            lines = path.read_text(encoding="ascii", errors="replace").splitlines()
        except OSError as exc:
            raise UsageError(f"--pin-seed file {path}: {exc.strerror}") from None
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
    if value is None:
        return int(os.stat(input_path).st_mtime)
    text = value.strip()
    try:
        if text.isdigit():
            return int(text)
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--created {value!r}: expected ISO 8601 or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp())


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
@click.option("--workers", "-w", type=int, default=1, show_default=True)
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
    production: bool,
    allow_software_keystore: bool,
) -> None:
    """Prepare a batch: INPUT records in, a protected personalization file out."""
    profile = load_profile(profile_name)
    store = open_store(keys_spec)
    check_production(
        store,
        production=production or profile.production,
        allow_software_keystore=allow_software_keystore,
        what=f"prep {Path(input_path).name}",
    )
    seed = None if pin_seed is None else _pin_seed(pin_seed)
    if chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    options = PrepOptions(
        batch_id=batch_id or Path(input_path).stem,
        created=_parse_created(created, input_path),
        workers=workers,
        chunk_size=chunk_size,
        pin_seed=seed,
        input_format=input_format,
    )
    update, bar = _progress(None, "rec")
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
@click.option("--workers", "-w", type=int, default=1, show_default=True)
@click.option("--format", "input_format", type=click.Choice(["csv", "jsonl"]), default=None)
def validate_cmd(
    input_path: str,
    profile_name: str,
    rejects_path: str | None,
    workers: int,
    input_format: str | None,
) -> None:
    """Check a batch against a profile without preparing it (no keys needed)."""
    profile = load_profile(profile_name)
    update, bar = _progress(None, "rec")
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
def verify_cmd(path: str, keys_spec: str) -> None:
    """Check every MAC, the order and the counts (refuses tampered, truncated, mixed files)."""
    store = open_store(keys_spec)
    result = verify(path, store)
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
    store = open_store(keys_spec)
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
