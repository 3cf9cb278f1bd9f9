"""``cardperso examples make-batch``: realistic synthetic input batches (no real person's data)."""

from __future__ import annotations

import click

from cardperso.cli.main import stop_on_signal
from cardperso.prep.synth import make_batch

__all__ = ["COMMANDS"]

#: Limits of a synthetic batch: 10 million records (about 1.5 GB of CSV), 10,000 photo files.
MAX_COUNT = 10_000_000
MAX_PHOTOS = 10_000


@click.group("examples")
def examples_group() -> None:
    """Example data for trying the engine out, tests and benchmarks."""


@examples_group.command("make-batch")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=0, max=MAX_COUNT),
    required=True,
    help=f"Valid records (at most {MAX_COUNT:,}).",
)
@click.option(
    "--out",
    "-o",
    "out_path",
    default="batch.csv",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Output file (.csv or .jsonl).",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--photos",
    type=click.IntRange(min=1, max=MAX_PHOTOS),
    default=None,
    help=f"Distinct photos to generate and share (default: min(count, 64); at most {MAX_PHOTOS}).",
)
@click.option(
    "--errors",
    type=click.IntRange(min=0, max=8),
    default=0,
    show_default=True,
    help="Append this many invalid records (one per validation rule).",
)
def make_batch_cmd(count: int, out_path: str, seed: int, photos: int | None, errors: int) -> None:
    """Write a synthetic batch and its photos/ directory beside it."""
    with stop_on_signal():  # a stopped run leaves no half batch under the name
        got = make_batch(out_path, count, seed=seed, photos=photos, errors=errors)
    click.echo(
        f"wrote {out_path}: {got['records']} records ({got['bad']} invalid), "
        f"{got['photos']} photos in photos/"
    )


COMMANDS = [examples_group]
