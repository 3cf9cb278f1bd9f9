"""Issue 11, output side of prep: a killed or failed prep leaves no personalization file under its
name (item 3), outputs never overwrite inputs (item 4), hostile arguments and profiles end in
one line with exit 1 or 2 (item 9).

Every command runs as a real subprocess (``python -c`` calling ``cardperso.cli.main.main``), the
hostile ones under an address-space limit (``RLIMIT_AS``) so that a regression fails instead of
taking the machine down.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardperso.errors import EncodingError
from cardperso.layouts import persofile as pf
from cardperso.prep.container import PersoWriter
from cardperso.prep.synth import make_batch
from profile_variants import write_without_oda

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "keys-sample" / "keys.json"
PROFILE = ROOT / "profiles" / "ssc3-pboc.yaml"
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space for a hostile-input run

_RUN = (
    "import resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit:\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "from cardperso.cli.main import main\n"
    "main(sys.argv[2:])\n"
)


def _argv(args: tuple[str, ...], memory: int) -> list[str]:
    return [sys.executable, "-c", _RUN, str(memory), *args]


def cli(*args: str, cwd: Path, memory: int = MEMORY_LIMIT) -> subprocess.CompletedProcess[str]:
    """Run ``cardperso ARGS`` in *cwd* under the memory limit (a hang fails after 120 s)."""
    env = {k: v for k, v in os.environ.items() if k != "CARDPERSO_DEBUG"}
    return subprocess.run(
        _argv(args, memory), cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def one_line_error(out: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    """Exit *code*, no traceback, stderr exactly one ``error: …`` line matching *pattern*."""
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert re.search(pattern, lines[0]), lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory with the example batch (and its photos), a key store and a profile copy."""
    shutil.copy(ROOT / "examples" / "batch.csv", tmp_path / "b.csv")
    shutil.copytree(ROOT / "examples" / "photos", tmp_path / "photos")
    shutil.copy(KEYS, tmp_path / "k.json")
    # without ODA: the 20,000-line SIGTERM/SIGKILL batches would need as many ICC keys
    write_without_oda(tmp_path / "ssc3-pboc.yaml")
    return tmp_path


def _prep(*extra: str) -> tuple[str, ...]:
    return ("prep", "b.csv", "-p", "ssc3-pboc.yaml", "-k", "k.json", *extra)


# -- item 3: the personalization file appears whole or not at all ------------------------------


def test_header_that_cannot_be_built_creates_no_file(tmp_path: Path) -> None:
    """Before the fix the file was opened first: a struct error left a 0-byte file."""
    header = pf.PERSO_HEADER.decode(pf.PERSO_HEADER.vectors[0][1])
    too_long = pf.PersoHeader(**{**_fields(header), "batch_id": "b" * 256})
    with pytest.raises(EncodingError, match="batch_id"):
        PersoWriter(tmp_path / "x.perso", too_long, bytes(32))
    assert list(tmp_path.iterdir()) == []


def _fields(header: pf.PersoHeader) -> dict[str, object]:
    return {name: getattr(header, name) for name in pf.PersoHeader.__dataclass_fields__}


def test_writer_shows_the_file_only_when_closed(tmp_path: Path) -> None:
    header = pf.PERSO_HEADER.decode(pf.PERSO_HEADER.vectors[0][1])
    target = tmp_path / "x.perso"
    writer = PersoWriter(target, header, bytes(32))
    assert not target.exists()
    assert next(p.name for p in tmp_path.iterdir()).startswith(".x.perso.")
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer = PersoWriter(target, header, bytes(32))
    writer.close(0, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["x.perso"]
    assert target.stat().st_mode & 0o077 == 0  # personal data: owner only


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 records: a personalization file of about 24 MB, flushed every 4 MB."""
    where = tmp_path_factory.mktemp("big")
    make_batch(where / "big.csv", 20_000, seed=11)
    return where


def _stop_half_way(proc: subprocess.Popen[str], where: Path, name: str) -> None:
    """Wait until the temporary personalization file holds 8 MB (a third of the batch), then
    SIGSTOP the process, so that the kill that follows lands half-way for sure."""
    while True:
        parts = list(where.glob(f".{name}.*.part"))
        if parts and parts[0].stat().st_size >= 8 << 20:
            os.kill(proc.pid, signal.SIGSTOP)
            break
        if proc.poll() is not None:
            pytest.fail(
                f"prep ended before it was half-way: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.005)
    assert not (where / name).exists()  # stopped before the end: still a temporary file
    assert list(where.glob(f".{name}.*.part"))


def _prep_big(where: Path, out: str, workers: int) -> subprocess.Popen[str]:
    rejects = out.replace(".perso", ".rejects.csv")  # not matched by ".NAME.*.part"
    args = (
        "prep",
        "big.csv",
        "-p",
        str(write_without_oda(where / "ssc3-pboc.yaml")),  # 20,000 ICC keys: no
        "-k",
        str(KEYS),
        "-o",
        out,
        "-r",
        rejects,
        "--workers",
        str(workers),
    )
    return subprocess.Popen(
        _argv(args, 0), cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _processes_in(where: Path) -> list[int]:
    """Processes whose command line names *where*'s batch (forked workers share it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if b"big.csv" in cmd and cwd == str(where):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_half_way_leaves_nothing(big_batch: Path, workers: int) -> None:
    name = f"term{workers}.perso"
    proc = _prep_big(big_batch, name, workers)
    _stop_half_way(proc, big_batch, name)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "error: stopped by SIGTERM: no output file was left half-written (temporary files removed)"
    ]
    left = sorted(p.name for p in big_batch.iterdir() if f"term{workers}." in p.name)
    assert left == []  # no file under the final name, no temporary, no rejects file
    assert _processes_in(big_batch) == []  # the workers are gone too


def test_sigterm_keeps_the_previous_file(big_batch: Path) -> None:
    name = "previous.perso"
    (big_batch / name).write_bytes(b"the good file of the last run")
    proc = _prep_big(big_batch, name, 1)
    while not list(big_batch.glob(f".{name}.*.part")) and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert (big_batch / name).read_bytes() == b"the good file of the last run"
    assert not [p for p in big_batch.iterdir() if "previous." in p.name and p.name != name]


def test_sigkill_half_way_leaves_only_a_hidden_temporary(big_batch: Path) -> None:
    """SIGKILL cannot be caught: the documented leftover is a hidden ``.NAME.*.part`` file,
    never a file under the final name (the next run is not confused by it)."""
    name = "kill.perso"
    proc = _prep_big(big_batch, name, 1)
    _stop_half_way(proc, big_batch, name)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(p.name for p in big_batch.iterdir() if "kill." in p.name)
    assert len(left) == 2, left
    assert re.fullmatch(r"\.kill\.perso\..+\.part", left[0]), left
    assert re.fullmatch(r"\.kill\.rejects\.csv\..+\.part", left[1]), left
    for part in big_batch.glob(".*.part"):
        part.unlink()


# -- item 4: outputs never overwrite inputs --------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "victim", "pattern"),
    [
        (("-o", "b.csv", "-r", "r.csv"), "b.csv", r"--out is the same file as INPUT"),
        (("-o", "./b.csv", "-r", "r.csv"), "b.csv", r"--out is the same file as INPUT"),
        (("-o", "k.json", "-r", "r.csv"), "k.json", r"--out is the same file as --keys"),
        (("-o", "x.perso", "-r", "k.json"), "k.json", r"--rejects is the same file as --keys"),
        (("-o", "x.perso", "-r", "b.csv"), "b.csv", r"--rejects is the same file as INPUT"),
        (("-o", "x", "-r", "x"), None, r"--out and --rejects are the same file"),
        (
            ("-o", "ssc3-pboc.yaml", "-r", "r.csv"),
            "ssc3-pboc.yaml",
            r"--out is the same file as --profile",
        ),
        (("-o", "link.csv", "-r", "r.csv"), "b.csv", r"--out is the same file as INPUT"),
        (
            ("-o", "x.perso", "-r", "seed", "--pin-seed", "file:seed"),
            "seed",
            r"--rejects is the same file as --pin-seed",
        ),
    ],
)
def test_prep_refuses_an_output_that_is_an_input(
    work: Path, extra: tuple[str, ...], victim: str | None, pattern: str
) -> None:
    os.link(work / "b.csv", work / "link.csv")  # a hard link is the same file
    (work / "seed").write_text("00112233445566778899AABBCCDDEEFF\n")
    (work / "seed").chmod(0o600)
    before = {p.name: digest(p) for p in work.iterdir() if p.is_file()}
    out = cli(*_prep(*extra), cwd=work)
    one_line_error(out, 2, pattern)
    after = {p.name: digest(p) for p in work.iterdir() if p.is_file()}
    assert after == before  # every input byte-identical, nothing created
    if victim is not None:
        assert digest(work / victim) == before[victim]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ("validate", "b.csv", "-p", "ssc3-pboc.yaml", "-r", "b.csv"),
            r"--rejects is the same file as INPUT",
        ),
        (
            ("validate", "b.csv", "-p", "ssc3-pboc.yaml", "-r", "ssc3-pboc.yaml"),
            r"--rejects is the same file as --profile",
        ),
    ],
)
def test_validate_refuses_an_output_that_is_an_input(
    work: Path, args: tuple[str, ...], pattern: str
) -> None:
    before = {p.name: digest(p) for p in work.iterdir() if p.is_file()}
    one_line_error(cli(*args, cwd=work), 2, pattern)
    assert {p.name: digest(p) for p in work.iterdir() if p.is_file()} == before


def test_a_device_is_never_replaced_by_an_output(work: Path, tmp_path: Path) -> None:
    """``--out /dev/null`` used to rename a regular file over the device node (as root)."""
    fifo = tmp_path / "fifo.perso"
    os.mkfifo(fifo)
    out = cli(*_prep("-o", str(fifo), "-r", "r.csv"), cwd=work)
    one_line_error(out, 2, r"fifo\.perso is not a regular file: refusing to replace it")
    assert fifo.is_fifo()
    assert not (work / "r.csv").exists()


def test_good_run_still_writes_both_files(work: Path) -> None:
    out = cli(*_prep("-o", "x.perso", "-r", "r.csv"), cwd=work)
    assert out.returncode == 1 and "prepared 40, rejected 8" in out.stdout, out.stderr
    assert (work / "x.perso").stat().st_size > 0 and (work / "r.csv").read_text().count("\n") == 9
    assert not list(work.glob(".*.part"))


# -- item 9: hostile arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (("--batch-id", "b" * 256), r"--batch-id must be 1 to 255 bytes of UTF-8, got 256"),
        (("--batch-id", "批" * 86), r"--batch-id must be 1 to 255 bytes of UTF-8, got 258"),
        (("--batch-id", "a\tb"), r"--batch-id must not contain control characters"),
        (("--batch-id", "  "), r"--batch-id must not be blank"),
        (("--created", "253402300800"), r"--created must be between 1970-01-01 and 9999-12-31"),
        (("--created", "0001-01-01"), r"--created must be between 1970-01-01 and 9999-12-31"),
        (("--created", "9" * 5000), r"--created '9{40}…': expected ISO 8601 or Unix seconds"),
        (("--created", "1e9"), r"--created '1e9': expected ISO 8601 or Unix seconds"),
        (("--workers", "1000"), r"--workers must be between 1 and 64, got 1000"),
        (("--workers", "0"), r"--workers must be between 1 and 64, got 0"),
        (("--chunk-size", "1000000000"), r"--chunk-size must be between 1 and 100000"),
        (("--pin-seed", "file:/dev/zero"), r"--pin-seed file /dev/zero is not a regular file"),
    ],
)
def test_hostile_prep_arguments_are_one_line_and_write_nothing(
    work: Path, extra: tuple[str, ...], pattern: str
) -> None:
    before = sorted(p.name for p in work.iterdir())
    out = cli(*_prep("-o", "x.perso", "-r", "r.csv", *extra), cwd=work)
    one_line_error(out, 2, pattern)
    assert sorted(p.name for p in work.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ("prep", "/dev/zero", "-p", "ssc3-pboc", "-k", "k.json", "-o", "x", "-r", "r"),
            r"INPUT /dev/zero is not a regular file",
        ),
        (
            ("prep", "b.csv", "-p", "ssc3-pboc", "-k", "/dev/zero", "-o", "x", "-r", "r"),
            r"--keys /dev/zero is not a regular file",
        ),
        (("validate", "fifo.csv", "-p", "ssc3-pboc"), r"INPUT fifo\.csv is not a regular file"),
        (
            ("validate", "b.csv", "-p", "ssc3-pboc", "--workers", "1000"),
            r"--workers must be between 1 and 64, got 1000",
        ),
        (("perso-file", "show", "fifo.csv"), r"FILE fifo\.csv is not a regular file"),
        (
            ("perso-file", "verify", "fifo.csv", "-k", "k.json"),
            r"FILE fifo\.csv is not a regular file",
        ),
        (
            ("perso-file", "verify", "b.csv", "-k", "/dev/zero"),
            r"--keys /dev/zero is not a regular file",
        ),
    ],
)
def test_inputs_that_never_end_are_refused(work: Path, args: tuple[str, ...], pattern: str) -> None:
    os.mkfifo(work / "fifo.csv")
    one_line_error(cli(*args, cwd=work), 2, pattern)


def test_longest_batch_id_and_last_second_are_written_and_shown(work: Path) -> None:
    batch_id = "批" * 85  # 255 bytes of UTF-8
    out = cli(
        *_prep(
            "-o",
            "x.perso",
            "-r",
            "r.csv",
            "--batch-id",
            batch_id,
            "--created",
            "9999-12-31T23:59:59Z",
        ),
        cwd=work,
    )
    assert out.returncode == 1, out.stderr
    show = cli("perso-file", "show", "x.perso", "--json", "--limit", "0", cwd=work)
    head = json.loads(show.stdout.splitlines()[0])["header"]
    assert head["batch_id"] == batch_id and head["created"] == "9999-12-31T23:59:59+00:00"


def test_perso_file_with_a_corrupt_creation_time_is_refused(work: Path) -> None:
    assert cli(*_prep("-o", "x.perso", "-r", "r.csv"), cwd=work).returncode == 1
    data = bytearray((work / "x.perso").read_bytes())
    data[22:30] = (1 << 50).to_bytes(8, "big")  # created: year 35 million (was 36812)
    (work / "y.perso").write_bytes(data)
    for args in (
        ("perso-file", "show", "y.perso"),
        ("perso-file", "verify", "y.perso", "-k", "k.json"),
    ):
        one_line_error(
            cli(*args, cwd=work),
            1,
            r"field 'created': at offset 22: persofile.header: creation time is out of range",
        )


# -- item 9: hostile profiles ------------------------------------------------------------------


def _face_profile(n: int) -> str:
    names = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase][:n]
    face = "".join(f"  - {{name: f_{nm}, src: name}}\n" for nm in names)
    text = re.sub(r"card_face:\n(  - .*\n)+", lambda _m: "card_face:\n" + face, PROFILE.read_text())
    return text.replace("name: ssc3-pboc", f"name: face{n}", 1)


def _hostile_profiles() -> Iterator[tuple[str, str, str]]:
    base = PROFILE.read_text()
    yield "nul", base.replace("title:", "title: a\0b\nx:", 1), r"nul\.yaml:5: character U\+0000"
    deep = base + "extra: " + "[" * 5000 + "]" * 5000 + "\n"
    yield "deepflow", deep, r"deepflow\.yaml:\d+: YAML syntax error: nested deeper than 32"
    block = base + "extra:\n" + "".join(" " * i + "k:\n" for i in range(1, 600))
    yield "deepblock", block, r"deepblock\.yaml:\d+: YAML syntax error: nested deeper than 32"
    bigint = base.replace("generation: 3", "generation: " + "9" * 5000, 1)
    yield "bigint", bigint, r"bigint\.yaml:6: field 'generation': integer has more than 30"
    yield "recursive", "name: recursive\na: &a [*a]\n", r"an alias refers to itself"
    laughs = ["name: laughs", "l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    yield "laughs", "\n".join(laughs) + "\n", r"expands to more than 100000 nodes"
    yield "huge", base + "#" * (1 << 20), r"huge\.yaml: the profile is larger than 1048576"
    yield "face256", _face_profile(256), r"face256\.yaml:\d+: field 'card_face': has more than 255"
    longname = base.replace("transport_kek: transport-kek", "transport_kek: " + "k" * 256)
    yield "longname", longname, r"field 'transport_kek': must be at most 255 characters"


@pytest.mark.parametrize(("name", "text", "pattern"), list(_hostile_profiles()), ids=lambda v: "")
def test_hostile_profile_is_one_line(work: Path, name: str, text: str, pattern: str) -> None:
    path = work / f"{name}.yaml"
    path.write_text(text.replace("name: ssc3-pboc", f"name: {name}", 1), encoding="utf-8")
    one_line_error(cli("profile", "check", str(path), cwd=work), 1, pattern)
    before = sorted(p.name for p in work.iterdir())
    out = cli(*("prep", "b.csv", "-p", str(path), "-k", "k.json", "-o", "x", "-r", "r"), cwd=work)
    one_line_error(out, 1, pattern)
    assert sorted(p.name for p in work.iterdir()) == before


@pytest.mark.parametrize("device", ["/dev/zero", "fifo.yaml"])
def test_profile_that_is_not_a_regular_file_is_refused(work: Path, device: str) -> None:
    os.mkfifo(work / "fifo.yaml")
    one_line_error(cli("profile", "check", device, cwd=work), 1, r"must be a regular file")


def test_what_profile_check_accepts_the_perso_file_holds(work: Path) -> None:
    """255 card-face fields (the header's limit) pass ``profile check`` and prep writes them."""
    path = work / "face255.yaml"
    path.write_text(_face_profile(255), encoding="utf-8")
    check = cli("profile", "check", str(path), cwd=work)
    assert check.returncode == 0 and "OK - profile face255" in check.stdout, check.stderr
    out = cli(
        "prep", "b.csv", "-p", str(path), "-k", "k.json", "-o", "x.perso", "-r", "r.csv", cwd=work
    )
    assert out.returncode == 1 and "prepared 40" in out.stdout, out.stderr
    verify = cli("perso-file", "verify", "x.perso", "-k", "k.json", cwd=work)
    assert verify.returncode == 0 and "40 records" in verify.stdout, verify.stderr


def test_input_name_that_cannot_be_a_batch_id_asks_for_one(work: Path) -> None:
    shutil.copy(work / "b.csv", work / "a\tb.csv")
    out = cli("prep", "a\tb.csv", "-p", "ssc3-pboc", "-k", "k.json", "-o", "x", "-r", "r", cwd=work)
    one_line_error(
        out,
        2,
        r"the input file's name cannot be the batch id \(must not contain control characters\): pass --batch-id",
    )
    assert not (work / "x").exists() and not (work / "r").exists()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (("-n", "10000001"), r"'--count' / '-n': 10000001 is not in the range 0<=x<=10000000"),
        (("-n", "5", "--photos", "100000"), r"'--photos': 100000 is not in the range 1<=x<=10000"),
    ],
)
def test_make_batch_limits(tmp_path: Path, extra: tuple[str, ...], pattern: str) -> None:
    out = cli("examples", "make-batch", "-o", "m/x.csv", *extra, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert re.search(pattern, out.stderr), out.stderr
    assert list(tmp_path.iterdir()) == []


def test_make_batch_never_replaces_a_device(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.csv")
    out = cli("examples", "make-batch", "-n", "3", "-o", "fifo.csv", cwd=tmp_path)
    one_line_error(out, 2, r"fifo\.csv is not a regular file: refusing to replace it")
    assert (tmp_path / "fifo.csv").is_fifo()


@pytest.mark.parametrize("created", [-1, pf.CREATED_MAX + 1, (1 << 63) - 1])
def test_header_layout_refuses_a_creation_time_no_calendar_shows(created: int) -> None:
    """A corrupted ``created`` field is a DecodeError (``perso-file show`` printed a traceback:
    ``year 36812 is out of range``), and a header is never built with one."""
    from cardperso.errors import DecodeError

    header = pf.PERSO_HEADER.decode(pf.PERSO_HEADER.vectors[0][1])
    raw = bytearray(pf.PERSO_HEADER.vectors[0][1])
    raw[22:30] = created.to_bytes(8, "big", signed=True)
    with pytest.raises(DecodeError, match=r"at offset 22: .*creation time is out of range") as err:
        pf.PERSO_HEADER.decode(bytes(raw))
    assert err.value.field == "created"
    bad = pf.PersoHeader(**{**_fields(header), "created": created})
    with pytest.raises(EncodingError, match="creation time is out of range"):
        pf.PERSO_HEADER.encode(bad)
    edge = pf.PersoHeader(**{**_fields(header), "created": pf.CREATED_MAX})
    assert pf.PERSO_HEADER.decode(pf.PERSO_HEADER.encode(edge)).created == pf.CREATED_MAX


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("validate", "big.csv", "-p", str(PROFILE), "-r", "v.rejects.csv"), "v.rejects.csv"),
        (("examples", "make-batch", "-n", "200000", "-o", "made.csv"), "made.csv"),
    ],
)
def test_sigterm_stops_validate_and_make_batch_cleanly(
    big_batch: Path, args: tuple[str, ...], name: str
) -> None:
    proc = subprocess.Popen(
        _argv(args, 0), cwd=big_batch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    while not list(big_batch.glob(f".{name}.*.part")):
        if proc.poll() is not None:
            pytest.fail(f"ended before its output was opened: {proc.communicate()}")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    assert not [p for p in big_batch.iterdir() if name in p.name]
