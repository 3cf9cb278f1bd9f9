"""A run's identity is its personalization file's own identity, never the file's name.

How this works
--------------
Two different batches may carry the same batch id (the input file's stem by default: every
``batch.csv`` is batch ``batch``). So a run is named by its batch id **and** the first four
bytes of the file's MAC (the trailer's HMAC over the header and every record MAC, see
:mod:`cardperso.layouts.persofile`): ``BATCH-1a2b3c4d``, and the journal keeps the whole MAC as
the run's digest. The MAC covers the input digest, the profile digest, the creation time and
every record, so two files that differ in anything are two runs, and the same file is always
the same run.

The journal's ``digest`` of a run is ``FILE MAC:RECORDS`` in hex, where ``RECORDS`` is the
SHA-256 of the input file's digest and the profile digest (both in the header): the same input
prepared again with the same profile (another creation time: another file, another run) makes
the same records. Starting such a file while the journal holds a run of the same batch id made
from the same records is refused, so no record is made twice by accident; an operator who means
to make them again prepares the batch under another batch id.

:func:`check_continuation` refuses, before a card is touched, to continue (``--resume``) or to
share (``--join``) a run with a file that is not the one it was made from, naming both files by
batch id and short digest (never by their content).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cardperso.crypto import equal
from cardperso.errors import DecodeError, UsageError
from cardperso.layouts import persofile as pf
from cardperso.line import jobs
from cardperso.storage.db import Database

#: Hex digits of the file MAC in a run id and in messages.
SHORT = 8


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A personalization file: its batch id and its file MAC (from the trailer)."""

    batch_id: str
    file_mac: bytes
    #: SHA-256(input digest ‖ profile digest): the records the file was prepared from.
    records: bytes = b""

    @property
    def digest(self) -> str:
        """What the journal stores for the run (``line_runs.digest``): ``MAC:RECORDS``."""
        return f"{self.file_mac.hex()}:{self.records.hex()}"

    @property
    def short(self) -> str:
        return self.file_mac.hex()[:SHORT]

    @property
    def run_id(self) -> str:
        return f"{self.batch_id}-{self.short}"

    def describe(self) -> str:
        return f"batch {self.batch_id!r}, file {self.short}"


def file_identity(path: str | os.PathLike[str], header: pf.PersoHeader, size: int) -> FileIdentity:
    """The identity of a file that :func:`cardperso.prep.container.verify` accepted (``size``
    is the verified length: the trailer is its last :data:`~pf.TRAILER_SIZE` bytes)."""
    with open(path, "rb") as fh:
        fh.seek(size - pf.TRAILER_SIZE)
        raw = fh.read(pf.TRAILER_SIZE)
    if len(raw) != pf.TRAILER_SIZE or raw[:4] != pf.TRAILER_MAGIC:
        raise DecodeError("the file changed after it was verified (no trailer)", offset=size)
    records = hashlib.sha256(header.input_digest + header.profile_digest).digest()
    return FileIdentity(header.batch_id, raw[8:40], records)


@dataclass(frozen=True, slots=True)
class JournalRun:
    run_id: str
    digest: str
    unfinished: int

    @property
    def file_mac(self) -> str:
        return self.digest.partition(":")[0]

    @property
    def records(self) -> str:
        return self.digest.partition(":")[2]

    def describe(self) -> str:
        return f"file {self.file_mac[:SHORT]}, run {self.run_id}"


def runs_of_batch(db: Database, batch_id: str) -> list[JournalRun]:
    """The journal's runs of ``batch_id`` (run id ``BATCH-xxxxxxxx``), whatever their file."""
    out = []
    for run_id, digest in db.execute("SELECT run_id, digest FROM line_runs ORDER BY created_at"):
        rid = str(run_id)
        if len(rid) != len(batch_id) + 1 + SHORT or not rid.startswith(batch_id + "-"):
            continue
        left = db.execute(
            "SELECT COUNT(*) FROM line_jobs WHERE run_id = ? AND state NOT IN (?, ?)",
            (rid, jobs.DONE, jobs.FAILED),
        )
        out.append(JournalRun(rid, str(digest or ""), int(left[0][0])))
    return out


def _same_file(run: JournalRun, ident: FileIdentity) -> bool:
    """Whether the journal's ``run`` was made from the file ``ident`` (its MAC, compared the
    way every MAC is compared)."""
    try:
        stored = bytes.fromhex(run.file_mac)
    except ValueError:
        return False
    return equal(stored, ident.file_mac)


def check_continuation(db: Database, ident: FileIdentity, *, resume: bool, join: bool) -> bool:
    """Refuse a run that would mix files; True when the file's run exists in the journal.

    * the file's run exists: refused without ``--resume`` / ``--join``, and refused whatever
      the options when the journal's run was made from another file (same short digest);
    * ``--resume`` of a file that has no run, while the journal holds the batch from another
      file: refused (the operator meant that run, and this is not its file);
    * a new run (or ``--join``) of a file with the same records (same input and profile) as
      another file's run of the batch: refused (they would be made twice);
    * ``--join`` while another file of the same batch id is still being made: refused.
    """
    runs = runs_of_batch(db, ident.batch_id)
    mine = next((r for r in runs if r.run_id == ident.run_id), None)
    others = [r for r in runs if not _same_file(r, ident)]
    if mine is not None:
        if not _same_file(mine, ident):
            raise UsageError(
                f"run {mine.run_id} in the journal was made from another file "
                f"({mine.describe()}; this is {ident.describe()}, "
                f"{ident.file_mac.hex()[:16]}): refusing to mix them"
            )
        if not (resume or join):
            raise UsageError(
                f"run {ident.run_id} ({ident.describe()}) exists in the journal: "
                "add --resume to continue it"
            )
        return True
    if resume and others:
        theirs = "; ".join(r.describe() for r in others)
        raise UsageError(
            f"--resume: this file ({ident.describe()}) has no run in the journal; the journal's "
            f"batch {ident.batch_id!r} was made from another file ({theirs}): refusing to "
            "continue it with this file (to start this file's own run, leave out --resume)"
        )
    same = [r for r in others if r.records == ident.records.hex()]
    if same:
        raise UsageError(
            f"this file ({ident.describe()}) holds the same records as {same[0].describe()} "
            "(the same input and profile, prepared again): they would be made twice. Resume "
            "that run with its own file (--resume), or prepare the batch under another "
            "--batch-id to make them again on purpose"
        )
    busy = [r for r in others if r.unfinished]
    if join and busy:
        theirs = "; ".join(f"{r.describe()}, {r.unfinished} record(s) not finished" for r in busy)
        raise UsageError(
            f"--join: batch {ident.batch_id!r} is being made from another file ({theirs}); "
            f"this is {ident.describe()}: refusing to join"
        )
    return False
