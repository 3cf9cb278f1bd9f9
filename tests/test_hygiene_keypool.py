"""Secrets hygiene of the ICC key pool (issue 13): no ICC private key anywhere in clear.

The scan of tests/test_hygiene.py (raw bytes, hex in both cases, spaced hex, bytes repr) looks
for every private CRT part (p, q, d mod (p−1), d mod (q−1), q⁻¹ mod p) of every pool key, and
for every secret of the (fresh random) key store (symmetric and SM2 values, the RSA CRT parts of
its CA and issuer keys), in everything these flows wrote:

* ``cardperso -vv keys pool generate`` (debug logging on), interrupted by SIGTERM once and then
  resumed, and ``cardperso -vv keys pool status``: the pool directory (state, segments, locks)
  and the commands' stdout and stderr;
* the per-card ODA DGIs of prep (:func:`cardperso.prep.oda.icc_dgis`) for every key: the
  private-key DGIs 8201-8205 are encrypted, so the parts must not appear in them either.

Expected hits: zero. The needles come from decrypting the pool with the key store, so the scan
is checked to be able to find them (a planted copy is found).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from cardperso.crypto.primitives import unpad_method2
from cardperso.keystore.pool import IccKeyPool, Reservation
from cardperso.keystore.software import SoftwareKeyStore
from cardperso.prep.oda import OdaSetup, icc_dgis
from test_hygiene import Secrets, Workdir, files_to_scan, scan, scan_keys
from test_keypool import busy_children, wait_for


def test_pool_files_logs_and_oda_dgis_hold_no_icc_private_key(tmp_path: Path) -> None:
    work = Workdir(tmp_path / "flow")
    keys = work.root / "keys.json"
    work.cli("keys", "generate", "--out", keys)
    gen = ["keys", "pool", "generate", keys, "--bits", "1024", "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardperso", "-vv", *map(str, gen), "--count", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # the workers make keys for a while (1 s of CPU each), however long a loaded machine takes
    # to get there: a fixed 6 s could end before the command had set its SIGTERM handler
    assert wait_for(lambda: busy_children(proc.pid, 1.0) >= 2, proc), "workers never got busy"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    (work.logs / "sigterm.stdout").write_bytes(out)
    (work.logs / "sigterm.stderr").write_bytes(err)
    assert proc.returncode == 128 + signal.SIGTERM
    pool = IccKeyPool(Path(f"{keys}.icc-pool") / "rsa1024")
    stopped_at = pool.status().total
    work.cli(*gen, "--count", stopped_at + 8)  # resumed
    work.cli("keys", "pool", "status", keys)
    state = pool.state()
    total = state["generated"]
    assert total == stopped_at + 8
    everything = Reservation(
        str(pool.directory), state["bits"], state["exponent"], state["kek"], state["part_len"],
        0, total, tuple((a, b) for a, b in state["segments"]),
    ).read(0, total)  # fmt: skip
    found = Secrets()
    # every secret of the key store, from its file: symmetric and SM2 values, RSA CRT parts
    for name, entry in json.loads(keys.read_text())["keys"].items():
        for part in ("value", "p", "q", "dp", "dq", "qinv"):
            if part in entry:
                found.add_key(f"store key {name} {part}", bytes.fromhex(entry[part]))
    with SoftwareKeyStore.load(keys) as store:
        for i in range(total):
            for j, part in enumerate(everything.parts(i)):
                clear = unpad_method2(store.unwrap(everything.kek, part))
                found.add_key(f"pool key {i} CRT part {j + 1}", clear)
        modulus, _ = store.rsa_public_key("oda-issuer")  # the store's issuer key signs
        setup = OdaSetup.make(
            issuer_sign=store.rsa_signer("oda-issuer"), issuer_length=len(modulus),
            afl=bytes.fromhex("08010101" "10010100"), aip=b"\x7c\x00", cert_dgi=0x0201,
            transport_kek="transport-kek",
        )  # fmt: skip
        dgis = icc_dgis(
            setup, everything, [b"static"] * total, ["6231000000000017"] * total,
            ["2812"] * total, store,
        )  # fmt: skip
    (work.root / "oda-dgis.bin").write_bytes(b"".join(dgis))
    files = files_to_scan(work.root, exclude=(keys,))
    assert any(f.name.startswith("seg-") for f in files) and len(files) >= 8
    hits = scan(files, found, scan_keys)
    assert not hits, hits
    # the needles are real: a planted part is found
    planted = work.root / "planted.bin"
    planted.write_bytes(b"x" + found.keys["pool key 3 CRT part 5"].hex().upper().encode())
    assert scan([planted], found, scan_keys) == {str(planted): ["pool key 3 CRT part 5 (HEX)"]}
