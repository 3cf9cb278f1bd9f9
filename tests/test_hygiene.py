"""Secrets hygiene (issue 5): the main flows leak no key, PIN or identity number anywhere.

A key store of FRESH RANDOM keys (``cardperso keys generate``: no published value can hide a
leak) and a synthetic batch with explicit PINs on some records go through the command line
with debug logging on (``-vv``: the root logger at DEBUG, written to a file with the
command's stdout and stderr):

* ``cardperso prep``, ``perso-file show --json``, ``perso-file show`` and ``perso-file verify``;
* a run on the simulated line through the real pcscd + vpcd readers of the test lab
  (``cardperso -vv run``: the stations' PC/SC APDU trace, ``devices.pcsc.log_trace``, goes to
  the debug log);
* the bank stage on one finished card: ``bank verify`` (ARQC verified by the issuer host),
  ``keys export-capk`` and ``bank verify --capk`` (the terminal kernel), ``bank ec-balance``
  and ``bank ec-load`` (issuer script MAC).

Then every log, trace, report and output file (rejects file, perso file, per-card results,
journal database, ``line.yaml``, tracks JSON, printed faces, stdout and stderr of every
command) is scanned for, as raw bytes and as hex (upper and lower case):

* every key of the store (for the ODA test CA and issuer RSA key pairs: each private CRT
  part), every per-card key derived from them (EMV option A ICC master keys,
  SSSE per-card keys, GP per-card keys diversified from the KMC with each chip's KDD), the EMV
  session keys (ATC 0-11, common and PBOC methods), the SCP02 session keys of every station
  session, the PIN seed, the perso-file MAC key and the key components of the ceremony;
* every PIN, as its digits (not part of a longer number) and as its ISO 9564 format-2 block;
* every full 18-character identity number (ASCII, either case of the check character).

Expected hits: zero. The virtual card images (``output/*.json``, ``rejects/*.json`` of the
simulated line) ARE the chips, whose memory holds the per-card keys, PINs and personal data by
nature; they are the only files left out, by name.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cardperso.card.channel import kdd_for
from cardperso.card.state import GP_TEST_KEY
from cardperso.card.vcard import VirtualCard
from cardperso.crypto import emv, gp, kcv, odd_parity, ssse
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.line.linefile import LineOptions
from cardperso.prep.container import file_key, read_header
from cardperso.prep.keys import pin_block, seeded_pin
from cardperso.profiles.loader import load_profile
from cardperso.sim.line import SimLine

PROFILE = "ssc3-pboc"
GOOD = 8  # valid records in the batch (all go through the line)
BAD = 8  # invalid records appended by the generator (rejects file)
EXPLICIT_PIN_RECORDS = (0, 2, 4)
ATC_RANGE = 12  # EMV session keys are computed for the ATCs 0..11 of every card


# -- running the command line ------------------------------------------------------------------


@dataclass
class Workdir:
    """A directory of everything one flow wrote, plus the stdout/stderr of its commands."""

    root: Path
    logs: Path = field(init=False)
    n: int = 0

    def __post_init__(self) -> None:
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str | Path | int, ok: tuple[int, ...] = (0,)) -> str:
        """Run ``cardperso -vv ARGS`` in a subprocess; stdout and stderr (the debug log) are
        kept in ``logs/`` for the scan. Returns stdout."""
        self.n += 1
        name = f"{self.n:02d}-{args[0]}"
        env = dict(os.environ, CARDPERSO_DEBUG="", CI="1", PYTHONUNBUFFERED="1")
        env.pop("CARDPERSO_DEBUG")
        proc = subprocess.run(
            [sys.executable, "-m", "cardperso", "-vv", *map(str, args)],
            capture_output=True,
            env=env,
            timeout=300,
            check=False,
        )
        (self.logs / f"{name}.stdout").write_bytes(proc.stdout)
        (self.logs / f"{name}.stderr").write_bytes(proc.stderr)
        assert proc.returncode in ok, (
            f"cardperso {' '.join(map(str, args))}: exit {proc.returncode}\n"
            f"{proc.stderr.decode(errors='replace')[-3000:]}"
        )
        return proc.stdout.decode()


# -- what must never appear ----------------------------------------------------------------------


@dataclass
class Secrets:
    """Needles by label (the label names the secret, never its value)."""

    keys: dict[str, bytes] = field(default_factory=dict)  # label -> key or secret bytes
    pins: dict[str, str] = field(default_factory=dict)  # label -> PIN digits
    ssns: dict[str, str] = field(default_factory=dict)  # label -> identity number

    def add_key(self, label: str, value: bytes) -> None:
        assert len(value) >= 8, label
        self.keys[label] = value


def _hex_forms(value: bytes) -> Iterator[tuple[str, bytes]]:
    yield "raw", value
    h = value.hex()
    yield "hex", h.encode()
    yield "HEX", h.upper().encode()
    pairs = " ".join(h[i : i + 2] for i in range(0, len(h), 2))
    yield "spaced hex", pairs.encode()
    yield "SPACED HEX", pairs.upper().encode()
    yield "bytes repr", repr(value)[2:-1].encode()


def scan_keys(data: bytes, found: Secrets) -> list[str]:
    hits = []
    for label, value in found.keys.items():
        for form, needle in _hex_forms(value):
            if needle in data:
                hits.append(f"{label} ({form})")
    for label, pin in found.pins.items():
        if re.search(rb"(?<![0-9])" + pin.encode() + rb"(?![0-9])", data):
            hits.append(f"{label} (digits)")
        for form, needle in _hex_forms(pin_block(pin)):
            if needle in data:
                hits.append(f"{label} PIN block ({form})")
    return hits


def scan_ssns(data: bytes, found: Secrets) -> list[str]:
    lower = data.lower()
    return [
        f"{label} (ASCII)" for label, ssn in found.ssns.items() if ssn.lower().encode() in lower
    ]


def scan_ssns_hex(data: bytes, found: Secrets) -> list[str]:
    """Identity numbers spelt as the hex of their ASCII (APDU traces of records that hold them)."""
    hits = []
    lower = data.lower()
    for label, ssn in found.ssns.items():
        for variant in {ssn.upper(), ssn.lower()}:
            h = variant.encode().hex().encode()
            if h in lower or b" ".join(h[i : i + 2] for i in range(0, len(h), 2)) in lower:
                hits.append(f"{label} (hex of ASCII)")
    return hits


#: Virtual card images: the chips themselves (their NV memory holds per-card keys, the PIN and
#: the personal data by nature). Finished cards are output/<SERIAL>.json, rejected ones
#: rejects/<SERIAL>.json, cards on a station stations/NAME/card-NNNNNN.json. Nothing else is
#: left out of the scan (tracks are output/<SERIAL>.tracks.json and ARE scanned).
CARD_IMAGE = re.compile(r"^(output|rejects)/[0-9A-F]{8}\.json$|^stations/[^/]+/card-\d{6}\.json$")


def files_to_scan(root: Path, *, exclude: tuple[Path, ...] = ()) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(path.is_relative_to(x) for x in exclude):
            continue
        rel = path.relative_to(root).as_posix()
        if CARD_IMAGE.match(rel.split("line/", 1)[-1]):
            continue
        out.append(path)
    return out


Check = Callable[[bytes, Secrets], list[str]]


def scan(files: list[Path], found: Secrets, check: Check) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for path in files:
        got = check(path.read_bytes(), found)
        if got:
            hits[str(path)] = sorted(set(got))
    return hits


def _report(hits: dict[str, list[str]]) -> str:
    return "\n".join(
        f"{p}: {', '.join(h[:6])}{' …' if len(h) > 6 else ''}" for p, h in hits.items()
    )


def test_the_scan_finds_planted_secrets(tmp_path: Path) -> None:
    """The scanner itself: every spelling is found, a PIN inside a longer number is not."""
    key, pin, ssn = (
        bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
        "482915",
        "11010119900307663X",
    )
    found = Secrets({"k": key}, {"p": pin}, {"s": ssn})
    planted = {
        "raw.bin": b"\x00" + key + b"\x00",
        "lower.log": b"key=" + key.hex().encode(),
        "spaced.log": b"> 80D8 " + " ".join(f"{b:02X}" for b in key).encode(),
        "repr.log": f"keys={[key]!r}".encode(),
        "pin.log": b"pin 482915 ok",
        "block.log": b"data 26482915FFFFFFFF",
        "ssn.csv": b"x," + ssn.lower().encode() + b",y",
    }
    for name, data in planted.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "clean.log").write_bytes(b"PAN 62284804829150001 masked 110101********663X")
    both: Check = lambda data, f: scan_keys(data, f) + scan_ssns(data, f)  # noqa: E731
    hits = scan(files_to_scan(tmp_path), found, both)
    assert sorted(Path(p).name for p in hits) == sorted(planted)
    hex_hits = scan_ssns_hex(b"< 08123131303130313139393030333037363633589000", found)
    assert hex_hits == ["s (hex of ASCII)"]


# -- the flows ----------------------------------------------------------------------------------


@dataclass
class Prepped:
    work: Workdir
    store: SoftwareKeyStore
    values: dict[str, bytes]  # every key of the store, read from its file
    keys_path: Path
    perso: Path
    records: list[dict[str, str]]  # the batch's good records, in order
    secrets: Secrets
    inputs: tuple[Path, ...]  # the input batch, its photos and the key store: not outputs
    show: str  # what `perso-file show --json` printed


def _write_batch(work: Workdir) -> tuple[Path, list[dict[str, str]], list[dict[str, str]]]:
    batch = work.root / "in" / "batch.csv"
    work.cli(
        "examples", "make-batch", "--count", GOOD, "--errors", BAD, "--seed", 5, "--out", batch
    )
    with batch.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or ())
        rows = list(reader)
    # explicit PINs on some good records (random, distinct, not a substring risk: 6 digits
    # matched only when not part of a longer number) and on one bad record
    used: set[str] = set()
    for i in (*EXPLICIT_PIN_RECORDS, GOOD):
        pin = ""
        while not pin or pin in used:
            pin = f"{secrets.randbelow(10**6):06d}"
        used.add(pin)
        rows[i]["pin"] = pin
    with batch.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(rows)
    return batch, rows[:GOOD], rows


@pytest.fixture(scope="module")
def prepped(tmp_path_factory: pytest.TempPathFactory) -> Prepped:
    work = Workdir(tmp_path_factory.mktemp("hygiene"))
    keys_dir = work.root / "keys"
    keys_path = keys_dir / "keys.json"
    work.cli("keys", "generate", "--out", keys_path)
    components = _import_from_components(work, keys_path)
    # The blank virtual cards' transport key is the GlobalPlatform test key (public; the card
    # vendor's `gp-transport`, by ceremony: the encoding station opens them with it,
    # diversification "none", then PUT KEY replaces it by per-card keys diversified from the
    # fresh issuer KMC). Every other key stays fresh and random.
    doc = json.loads(keys_path.read_text())
    doc["keys"]["gp-transport"] = {
        "algorithm": "3DES",
        "value": GP_TEST_KEY.hex(),
        "kcv": kcv("3DES", GP_TEST_KEY).hex(),
    }
    keys_path.write_text(json.dumps(doc))
    store = SoftwareKeyStore.load(keys_path)
    values = {n: bytes.fromhex(k["value"]) for n, k in doc["keys"].items() if "value" in k}
    assert sorted(values) == store.names()
    # the ODA chain's RSA key pairs (issue 13): every private CRT part is a needle
    rsa_parts = {
        f"{n} {part}": bytes.fromhex(k[part])
        for n, k in doc["keys"].items()
        if k["algorithm"] == "RSA"
        for part in ("p", "q", "dp", "dq", "qinv")
    }
    assert len(rsa_parts) == 10 and len(store.rsa_names()) == 2

    batch, good, rows = _write_batch(work)
    # the reference product's ODA: the issuer fills the ICC key pool beside its store first
    lines = len(Path(batch).read_bytes().splitlines())
    work.cli("keys", "pool", "generate", keys_path, "--bits", "1024", "--count", lines)
    out = work.root / "out"
    out.mkdir()
    perso = out / "batch.perso"
    printed = work.cli(
        "prep", batch, "--profile", PROFILE, "--keys", keys_path, "--out", perso,
        "--rejects", out / "rejects.csv", "--created", "2026-01-15T00:00:00Z", ok=(1,),
    )  # fmt: skip
    assert f"prepared {GOOD}, rejected {BAD}" in printed, printed
    show = work.cli("perso-file", "show", "--json", perso)
    work.cli("perso-file", "show", perso)
    work.cli("perso-file", "verify", perso, "--keys", keys_path)
    work.cli("validate", batch, "--profile", PROFILE, "--rejects", out / "validate.csv", ok=(1,))
    work.cli("keys", "list", keys_path)
    work.cli("keys", "check", keys_path)

    found = Secrets()
    for name, value in values.items():
        found.add_key(f"store key {name}", value)
    for label, value in rsa_parts.items():
        found.add_key(f"ODA private key part {label}", value)
    for i, component in enumerate(components):
        found.add_key(f"key component {i + 1}", component)
    with perso.open("rb") as fh:
        header, _raw = read_header(fh)
    mac_key, seed = file_key(store, header.kek_name, header.batch_id, header.profile_digest)
    assert store.unwrap(header.kek_name, header.pin_seed, pad=True) == seed
    found.add_key("perso-file MAC key", mac_key)
    found.add_key("PIN seed", seed)
    _add_derived(found, values, good)
    profile = load_profile(PROFILE)
    for i, r in enumerate(rows):
        if r["pin"]:
            found.pins[f"PIN of row {i}"] = r["pin"]
        elif i < GOOD:
            found.pins[f"seeded PIN of row {i}"] = seeded_pin(seed, r["ssn"], profile.pin.length)
        if len(r["ssn"]) == 18:
            found.ssns[f"identity number of row {i}"] = r["ssn"]
    return Prepped(
        work, store, values, keys_path, perso, good, found, (batch.parent, keys_dir), show
    )


def _import_from_components(work: Workdir, keys_path: Path) -> list[bytes]:
    """The key ceremony: a key imported from two component files (KCVs given), -vv."""
    parts = [odd_parity(secrets.token_bytes(16)) for _ in range(2)]
    args: list[str | Path] = []
    for i, part in enumerate(parts):
        path = keys_path.parent / f"component-{i + 1}.hex"
        path.write_text(part.hex().upper() + "\n")
        args += ["--component-file", path, "--component-kcv", kcv("3DES", part).hex()]
    combined = bytes(a ^ b for a, b in zip(*parts))
    work.cli(
        "keys", "import-components", "--store", keys_path, "--name", "ceremony-kek",
        "--algorithm", "3DES", *args, "--kcv", kcv("3DES", combined).hex(),
    )  # fmt: skip
    return parts


def _add_derived(found: Secrets, value: dict[str, bytes], good: list[dict[str, str]]) -> None:
    """Every per-card key prep derives, recomputed with cardperso.crypto."""
    profile = load_profile(PROFILE)
    assert profile.pboc is not None
    cards = [(r["pan"], r["pan_seq"]) for r in good]
    for role, imk in (
        ("AC", profile.pboc.imk_ac),
        ("SMI", profile.pboc.imk_smi),
        ("SMC", profile.pboc.imk_smc),
    ):
        for i, mk in enumerate(emv.derive_icc_master_keys_a(value[imk], cards)):
            found.add_key(f"ICC MK-{role} of row {i}", mk)
            for atc in range(ATC_RANGE):  # session keys of the cryptograms the flows ask for
                t = atc.to_bytes(2, "big")
                found.add_key(
                    f"{role} session key (ATC {atc}) of row {i}", emv.session_key_common(mk, t)
                )
                found.add_key(
                    f"{role} PBOC process key (ATC {atc}) of row {i}", emv.session_key_pboc(mk, t)
                )
    factors = [r["card_no"][:8].encode("ascii") for r in good]
    for k in profile.ssse.keys:
        derived = ssse.diversify(value[k.master], profile.ssse.algorithm, factors)
        for i, key in enumerate(derived):
            found.add_key(f"SSSE key {k.id:02X} of row {i}", key)


def _bank_stage(work: Workdir, keys: Path, image: Path, slot) -> None:  # type: ignore[no-untyped-def]
    """The bank stage on a finished card: quality control (ARQC verified by the issuer host),
    electronic-cash balance and an online load (issuer script MAC)."""
    slot.insert(VirtualCard.load(image))
    try:
        work.cli("bank", "verify", "--reader", slot.name, "--keys", keys)
        # the terminal kernel (issue 13): exit 1 when a claim does not hold, scanned alike
        capk = work.root / "capk.json"
        work.cli("keys", "export-capk", keys, "--out", capk)
        work.cli("bank", "verify", "--reader", slot.name, "--keys", keys, "--capk", capk,
                 ok=(0, 1))  # fmt: skip
        work.cli("bank", "ec-balance", "--reader", slot.name)
        work.cli("bank", "ec-load", "--reader", slot.name, "--amount", 1234, "--keys", keys)
    finally:
        slot.remove()


def _assert_clean(hits: dict[str, list[str]], what: str) -> None:
    assert not hits, f"{what} found in:\n{_report(hits)}"


def test_prep_outputs_hold_no_key_and_no_pin(prepped: Prepped) -> None:
    files = files_to_scan(prepped.work.root, exclude=prepped.inputs)
    names = {p.name for p in files}
    assert {"batch.perso", "rejects.csv"} <= names and len(names) >= 10, names
    assert len(prepped.secrets.pins) == GOOD + 1 and len(prepped.secrets.keys) > 50
    _assert_clean(scan(files, prepped.secrets, scan_keys), "keys or PINs")


def test_prep_logs_and_reports_hold_no_identity_number(prepped: Prepped) -> None:
    """Everything prep and perso-file print or log, and the rejects file: masked only."""
    files = [
        p for p in files_to_scan(prepped.work.root, exclude=prepped.inputs) if p.suffix != ".perso"
    ]
    _assert_clean(scan(files, prepped.secrets, scan_ssns), "full identity numbers")
    shown = [json.loads(line) for line in prepped.show.splitlines()][1:]
    assert len(shown) == GOOD
    for row, record in zip(shown, prepped.records):  # the masked form an operator needs
        assert row["ssn"] == record["ssn"][:6] + "*" * 8 + record["ssn"][-4:]
        assert row["card_no"] == record["card_no"]


def test_perso_file_holds_no_identity_number_in_clear(prepped: Prepped) -> None:
    """The lead's rule: personal data are encrypted in the perso file (card number and the
    masked identity number may stay in clear for ``perso-file show``)."""
    _assert_clean(scan([prepped.perso], prepped.secrets, scan_ssns), "full identity numbers")
    data = prepped.perso.read_bytes()
    for i, r in enumerate(prepped.records):  # nor the name (EF06, 9F0B, face) or the PAN
        assert r["name"].encode("gbk") not in data, f"name of row {i} in GBK"
        assert r["name"].encode() not in data, f"name of row {i} in UTF-8"
        assert r["pan"].encode() not in data, f"PAN of row {i} in ASCII"
        assert bytes.fromhex(r["pan"][:16]) not in data, f"PAN of row {i} in BCD"


# -- the line -----------------------------------------------------------------------------------


@dataclass
class LineDone:
    root: Path
    files: list[Path]
    secrets: Secrets


@pytest.fixture(scope="module")
def line_run(prepped: Prepped, pcsc_lab) -> LineDone:  # type: ignore[no-untyped-def]
    work = prepped.work
    state = work.root / "line"
    readers = [s for s in pcsc_lab.slots if s.card is None][:2]
    line = SimLine(2, state, readers=readers, options=LineOptions(card_timeout=5, pause_retry=0.2))
    results = work.root / "out" / "results.csv"
    with line:
        work.cli(
            "run", prepped.perso, "--line", state / "line.yaml", "--keys", prepped.keys_path,
            "--db", work.root / "out" / "journal.db", "--results", results,
        )  # fmt: skip
    with results.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == GOOD and {r["outcome"] for r in rows} == {"produced"}, rows
    _bank_stage(
        work, prepped.keys_path, state / "output" / f"{rows[0]['chip_serial']}.json", readers[0]
    )
    # GP per-card keys: diversified from the KMC with each chip's KDD (PUT KEY at the station)
    found = Secrets(dict(prepped.secrets.keys), prepped.secrets.pins, prepped.secrets.ssns)
    value = prepped.values["gp-kmc"]
    kdds = [kdd_for(bytes.fromhex(r["chip_serial"])) for r in rows]
    for r, keys in zip(rows, gp.diversify(value, kdds, "emv")):
        for role in ("enc", "mac", "dek"):
            found.add_key(f"GP {role} of record {r['record']}", getattr(keys, role))
    # SCP02 session keys of every secure channel the stations opened (transport keys: the GP
    # test key; sequence counter from each INITIALIZE UPDATE response in the trace)
    trace = "".join(p.read_text() for p in work.logs.glob("*-run.stderr"))
    responses = re.findall(r"> 8050[0-9A-F]* +< ([0-9A-F]{56})9000", trace)
    assert len(responses) >= GOOD, "every card's INITIALIZE UPDATE is in the trace"
    transport = gp.StaticKeys(GP_TEST_KEY, GP_TEST_KEY, GP_TEST_KEY)
    for n, resp in enumerate(responses):
        session = gp.scp02_session_keys(transport, bytes.fromhex(resp[24:28]))
        for role in ("enc", "mac", "rmac", "dek"):
            found.add_key(f"SCP02 S-{role.upper()} of session {n}", getattr(session, role))
    files = files_to_scan(work.root, exclude=prepped.inputs)
    return LineDone(state, files, found)


@pytest.mark.pcsc
def test_line_run_writes_every_file_the_scan_expects(line_run: LineDone) -> None:
    rels = {p.relative_to(line_run.root.parent).as_posix() for p in line_run.files}
    assert "line/line.yaml" in rels and "out/results.csv" in rels and "out/journal.db" in rels
    assert sum(r.endswith(".tracks.json") for r in rels) == GOOD
    assert sum(r.endswith(".png") for r in rels) == GOOD
    trace = "".join(
        p.read_text(errors="replace") for p in line_run.files if p.name.endswith("-run.stderr")
    )
    assert " > " in trace and "bytes redacted" in trace, "the APDU trace is in the debug log"
    # the card images were left out, and only them
    images = [p for p in (line_run.root / "output").glob("*.json") if ".tracks" not in p.name]
    assert len(images) == GOOD and not set(images) & set(line_run.files)


@pytest.mark.pcsc
def test_line_run_leaks_no_key_and_no_pin(line_run: LineDone) -> None:
    _assert_clean(scan(line_run.files, line_run.secrets, scan_keys), "keys or PINs")


@pytest.mark.pcsc
def test_line_run_leaks_no_identity_number(line_run: LineDone) -> None:
    files = [p for p in line_run.files if p.suffix != ".perso"]
    _assert_clean(scan(files, line_run.secrets, scan_ssns), "full identity numbers")


@pytest.mark.pcsc
def test_line_trace_does_not_spell_identity_numbers_in_hex(line_run: LineDone) -> None:
    """The APDU trace is a log: personal data in it are limited to what an operator needs
    (issue 5), so records read back with the identity number must not show it in hex."""
    files = [p for p in line_run.files if p.suffix != ".perso"]
    _assert_clean(scan(files, line_run.secrets, scan_ssns_hex), "identity numbers in hex")
