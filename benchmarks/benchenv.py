"""What every benchmark prints beside its figures: the machine, the code and the load.

A figure means little without the machine it came from, the code it measured and how busy the
machine was. Every script in ``benchmarks/`` calls :func:`start` first (it prints the machine,
the commit and the load average) and :meth:`Run.end` last (the load average again, and the
seconds the run took), so a figure taken on a loaded machine says so.

* CPUs: ``os.cpu_count()`` (CPUs in the machine) and ``len(os.sched_getaffinity(0))`` (CPUs
  this process may run on); the load average is from ``os.getloadavg()`` (1, 5, 15 minutes).
* Code: ``git rev-parse --short HEAD``, marked ``+uncommitted`` when ``src/`` or
  ``benchmarks/`` differ from that commit (the figures are then not those of the commit).
* Versions: the Python packages that carry the measured work, and the system packages of the
  PC/SC lab (pcsc-lite, vsmartcard-vpcd), SoftHSM2 and PostgreSQL, from ``dpkg-query``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTHON_PACKAGES = ("cryptography", "pyscard", "python-pkcs11", "psycopg", "construct")
SYSTEM_PACKAGES = ("pcscd", "vsmartcard-vpcd", "softhsm2", "postgresql-*")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def commit() -> str:
    head = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks"]
    )
    return f"{head}+uncommitted" if dirty else head


def python_versions() -> str:
    out = []
    for name in PYTHON_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(out)


def system_versions() -> str:
    text = _run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *SYSTEM_PACKAGES])
    out = []
    for line in text.splitlines():
        name, _, version = line.partition(" ")
        # the server package (postgresql-15), not the client and common packages
        if version and (not name.startswith("postgresql") or re.fullmatch(r"postgresql-\d+", name)):
            out.append(f"{name} {version}")
    return ", ".join(out)


@dataclass
class Run:
    """One benchmark run: its start time and load (see :func:`start`)."""

    name: str
    started: float = field(default_factory=time.monotonic)
    load_start: str = field(default_factory=load)

    def end(self) -> None:
        """Print the load average at the end and the run's duration."""
        seconds = time.monotonic() - self.started
        print(
            f"\n{self.name}: load average (1/5/15 min) at start {self.load_start}, at end "
            f"{load()}; {os.cpu_count()} CPUs; run took {seconds:.0f} s",
            flush=True,
        )


def machine() -> str:
    """The machine, the code and the versions, as lines of text."""
    return "\n".join(
        (
            f"machine: {cpu_name()}, {os.cpu_count()} CPUs ({usable_cpus()} usable by this "
            f"process), {memory_gib():.0f} GiB, {platform.system()} {platform.release()}",
            f"python: {platform.python_implementation()} {platform.python_version()}; "
            f"{python_versions()}",
            f"system packages: {system_versions() or 'unknown'}",
            f"code: commit {commit()}",
        )
    )


def start(name: str) -> Run:
    """Print the command line, the machine and the load average; return the run."""
    run = Run(name)
    exe = Path(sys.executable)
    shown = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else str(exe)
    print(f"$ {shlex.join([shown, *sys.argv])}")
    print(machine())
    print(f"load average (1/5/15 min) at start: {run.load_start}", flush=True)
    return run
