"""pcscd reader entries for vpcd slots, and a private pcscd process.

How this works
--------------
* One vpcd reader entry with ``CHANNELID P`` gives two reader slots listening on ports P and
  P+1, named ``"<FRIENDLYNAME> 00 00"`` and ``"<FRIENDLYNAME> 00 01"``. N slots on ports P,
  P+1, ... need ceil(N/2) entries on ports P, P+2, ...; each entry gets its own FRIENDLYNAME.
* pcscd loads a driver file once and shares it between every entry naming the same LIBPATH,
  and vpcd keeps its slot state in that one loaded copy: entries that share the file map cards
  to the wrong readers. So each entry gets its **own copy** of ``libifdvpcd.so``, kept in a
  directory beside (never inside) the config directory, because pcscd parses every file of the
  config directory as reader configuration.
* pcscd 1.9 always listens on ``/run/pcscd/pcscd.comm``: there is one pcscd per machine. To use
  private entries, stop the running pcscd and start ``pcscd -f -c DIR`` (root only: pcscd
  needs to write ``/run/pcscd``). A non-root user asks an administrator to copy the entries
  (and driver copies) into ``/etc/reader.conf.d`` and restart pcscd, or to run
  ``sudo pcscd -f -c DIR`` (see docs/virtual-readers.md).
"""

from __future__ import annotations

import contextlib
import filecmp
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cardperso.errors import TransportError, UsageError

#: Where Debian, Fedora and source builds put the vpcd driver.
DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib64/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib/*/pcsc/drivers/serial/libifdvpcd.so",
)
#: pcscd's one client socket and pid file.
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
#: Prefix of the entry files this module writes (others in the directory are left alone).
ENTRY_PREFIX = "cardperso-vpcd-"
DEFAULT_NAME = "cardperso"


@dataclass(frozen=True, slots=True)
class ReaderSlot:
    """One vpcd slot: its index, PC/SC reader name and TCP port."""

    index: int
    name: str
    port: int


def find_vpcd_driver() -> Path:
    """The installed vpcd driver (``CARDPERSO_VPCD_DRIVER`` overrides the search)."""
    env = os.environ.get("CARDPERSO_VPCD_DRIVER")
    if env:
        path = Path(env)
        if not path.is_file():
            raise UsageError(f"CARDPERSO_VPCD_DRIVER={env} is not a file")
        return path
    for pattern in DRIVER_CANDIDATES:
        for hit in sorted(glob.glob(pattern)):
            return Path(hit)
    raise UsageError(
        "vpcd driver libifdvpcd.so not found: install the Debian package vsmartcard-vpcd "
        "(tools/bootstrap does) or set CARDPERSO_VPCD_DRIVER"
    )


def entry_name(name: str, entry_port: int) -> str:
    """FRIENDLYNAME of the entry whose first slot listens on ``entry_port``."""
    return f"{name} {entry_port}"


def reader_layout(slots: int, port: int, name: str = DEFAULT_NAME) -> list[ReaderSlot]:
    """Reader names and ports of ``slots`` slots on ports ``port``, ``port + 1``, ..."""
    if slots < 1:
        raise UsageError("at least one slot")
    if port < 1024 or port + slots + 1 > 65535:
        raise UsageError(f"ports {port}..{port + slots - 1} are out of range")
    out = []
    for i in range(slots):
        entry_port = port + i - i % 2
        out.append(ReaderSlot(i, f"{entry_name(name, entry_port)} 00 {i % 2:02X}", port + i))
    return out


def default_drivers_dir(config_dir: Path) -> Path:
    """Where the per-entry driver copies go: beside the config directory, never inside."""
    config_dir = Path(config_dir).resolve()
    return config_dir.parent / f"{config_dir.name}.drivers"


def write_reader_entries(
    config_dir: Path,
    slots: int,
    port: int,
    *,
    name: str = DEFAULT_NAME,
    driver: Path | None = None,
    drivers_dir: Path | None = None,
) -> list[ReaderSlot]:
    """Write ceil(slots/2) vpcd entries (one per two slots) and their driver copies.

    Entry files this module wrote before in ``config_dir`` are replaced; other files are kept.
    Returns the slots with their reader names and ports.
    """
    layout = reader_layout(slots, port, name)
    config_dir = Path(config_dir)
    drivers = Path(drivers_dir) if drivers_dir is not None else default_drivers_dir(config_dir)
    if (
        drivers.resolve() == config_dir.resolve()
        or config_dir.resolve() in drivers.resolve().parents
    ):
        raise UsageError("the driver copies must live outside the pcscd config directory")
    source = driver or find_vpcd_driver()
    config_dir.mkdir(parents=True, exist_ok=True)
    drivers.mkdir(parents=True, exist_ok=True)
    for old in config_dir.glob(ENTRY_PREFIX + "*"):
        old.unlink()
    for entry_port in sorted({s.port - s.index % 2 for s in layout}):
        lib = drivers / f"libifdvpcd-{entry_port}.so"
        if not lib.exists() or not filecmp.cmp(source, lib, shallow=False):
            tmp = lib.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(lib)
        text = (
            f"# written by cardperso: vpcd slots on ports {entry_port} and {entry_port + 1}\n"
            f'FRIENDLYNAME "{entry_name(name, entry_port)}"\n'
            f"DEVICENAME   /dev/null:{entry_port}\n"
            f"LIBPATH      {lib.resolve()}\n"
            f"CHANNELID    {entry_port}\n"
        )
        (config_dir / f"{ENTRY_PREFIX}{entry_port}").write_text(text)
    return layout


# -- the pcscd process ---------------------------------------------------------------------


def pcscd_pids() -> list[int]:
    """Process ids of running pcscd daemons (normally zero or one)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "pcscd":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return sorted(pids)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_pcscd(pid: int, timeout: float = 5.0) -> None:
    """Stop the pcscd with process id ``pid`` (SIGTERM, then SIGKILL after ``timeout``)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            break
        time.sleep(0.02)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _socket_accepts(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        return False
    finally:
        s.close()
    return True


class Pcscd:
    """A private ``pcscd -f -c CONFIG_DIR`` started (and stopped) by us.

    ``replace=True`` stops a pcscd that is already running (there is only one per machine).
    Needs root; a non-root user gets a :class:`UsageError` that says what to do.
    """

    def __init__(self, config_dir: Path, *, log_path: Path | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, *, replace: bool = False, detach: bool = False) -> Pcscd:
        if os.geteuid() != 0:
            raise UsageError(
                "starting pcscd needs root: run `sudo pcscd -f -c "
                f"{self.config_dir.resolve()}` (after stopping the system pcscd), or install the "
                "entries in /etc/reader.conf.d and restart pcscd (docs/virtual-readers.md)"
            )
        running = pcscd_pids()
        if running and not replace:
            raise UsageError(
                f"pcscd is already running (pid {running[0]}); there is one per machine: "
                "stop it first or ask for it to be replaced"
            )
        for pid in running:
            stop_pcscd(pid)
        exe = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(exe).exists():
            raise UsageError("pcscd not found: install the Debian package pcscd")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [exe, "-f", "-c", str(self.config_dir.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        self._wait_socket()
        return self

    def _wait_socket(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TransportError(
                    f"pcscd exited at start with status {self.process.returncode}"
                    + (f" (log: {self.log_path})" if self.log_path else "")
                )
            if _socket_accepts(PCSCD_SOCKET):
                return
            time.sleep(0.02)
        raise TransportError(f"pcscd did not open {PCSCD_SOCKET} within {timeout:g} s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Pcscd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- readers as PC/SC clients see them -------------------------------------------------------


def reader_names() -> list[str]:
    """Names of the PC/SC readers pcscd reports now (empty when pcscd is not running)."""
    from smartcard import scard

    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return []
    try:
        rc, readers = scard.SCardListReaders(ctx, [])
        if rc != scard.SCARD_S_SUCCESS:
            return []
        return [str(r) for r in readers]
    finally:
        scard.SCardReleaseContext(ctx)


def wait_for_readers(names: list[str], timeout: float = 10.0) -> None:
    """Poll PC/SC until every reader in ``names`` is listed (pcscd needs a moment)."""
    deadline = time.monotonic() + timeout
    missing = list(names)
    while True:
        present = set(reader_names())
        missing = [n for n in names if n not in present]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TransportError(
                f"PC/SC readers did not appear within {timeout:g} s: {', '.join(missing)} "
                f"(pcscd lists: {', '.join(sorted(present)) or 'none'})"
            )
        time.sleep(0.05)


def restart_hint(config_dir: Path) -> str:
    """What a person runs to (re)start pcscd with these entries."""
    d = Path(config_dir).resolve()
    return (
        f"as root: stop the running pcscd (systemctl stop pcscd.socket pcscd), then "
        f"`pcscd -f -c {d}`; or copy {d}/{ENTRY_PREFIX}* into /etc/reader.conf.d/ and "
        f"`systemctl restart pcscd`"
    )
