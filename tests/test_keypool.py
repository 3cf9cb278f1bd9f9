"""The ICC key pool (issue 13 item 2): generation with every core, protection at rest,
reservations that hand each key out once, exhaustion before any output, and crashes.

Outside reference: every pool key is checked by OpenSSL's raw public operation (``openssl
pkeyutl -encrypt -pubin``, rsa_padding_mode:none, through tests/openssl_rsa.py) recovering a
block our CRT private operation signed with the key decrypted from the pool, and by the CRT
identities (n = pq, e·dp = 1 mod p−1 ...) that :meth:`RsaKey.from_crt` checks.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cardperso.cli.keys import open_store
from cardperso.cli.main import _register, cli
from cardperso.crypto.primitives import unpad_method2
from cardperso.crypto.rsa import RsaKey, rsa_sign_raw
from cardperso.errors import KeyStoreError
from cardperso.keystore.pool import IccKeyPool, PoolExhausted, PoolKeys, Reservation
from cardperso.keystore.poolgen import fill, open_or_create
from cardperso.keystore.software import SoftwareKeyStore, generate_file
from openssl_rsa import public_pem, recover_with

BITS = 1024


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pool") / "keys.json"
    generate_file(path)
    return path


def _new_pool(store_path: Path, directory: Path, bits: int = BITS) -> IccKeyPool:
    with SoftwareKeyStore.load(store_path) as store:
        return open_or_create(directory, store, bits=bits, exponent=3, kek="transport-kek")


def _fill(store_path: Path, pool: IccKeyPool, count: int, **kw: int) -> int:
    opener = functools.partial(open_store, str(store_path))
    return fill(pool, opener, count=count, workers=2, **kw).generated


def decrypt_key(store: SoftwareKeyStore, keys: PoolKeys, i: int) -> RsaKey:
    """Key ``i`` of a read: unwrap its five DGI values and check the CRT identities."""
    qinv, dq, dp, q, p = (unpad_method2(store.unwrap(keys.kek, x)) for x in keys.parts(i))
    return RsaKey.from_crt(keys.moduli[i], keys.exponent, p, q, dp, dq, qinv)


def _all_keys(pool: IccKeyPool) -> PoolKeys:
    """Every key of the pool, read through a reservation-shaped view (no cursor moves)."""
    s = pool.state()
    segs = tuple((a, b) for a, b in s["segments"])
    view = Reservation(
        str(pool.directory), s["bits"], s["exponent"], s["kek"], s["part_len"], 0,
        s["generated"], segs,
    )  # fmt: skip
    return view.read(0, s["generated"])


def test_generated_keys_are_sound_protected_and_checked_by_openssl(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "rsa1024")
    assert _fill(store_path, pool, 10, batch=3, segment=4) == 10
    st = pool.status()
    assert (st.total, st.used, st.free, st.bits, st.exponent) == (10, 0, 10, BITS, 3)
    assert st.segments >= 2  # the reads below cross segment boundaries
    keys = _all_keys(pool)
    assert len(set(keys.moduli)) == 10
    blobs = b"".join(p.read_bytes() for p in pool.directory.iterdir())
    with SoftwareKeyStore.load(store_path) as store:
        for i in range(10):
            key = decrypt_key(store, keys, i)
            assert key.bits == BITS and key.exponent == 3
            for part in (key.p, key.q, key.dp, key.dq, key.qinv):
                assert part not in blobs  # no private part in clear in any pool file
            if i < 2:  # OpenSSL's public operation recovers what the pool key signed
                block = b"\x6a" + os.urandom(BITS // 8 - 2) + b"\xbc"
                pem = public_pem(key.modulus, 3, tmp_path)
                assert recover_with(pem, rsa_sign_raw(key, block)) == block
    assert pool.directory.stat().st_mode & 0o777 == 0o700
    for f in pool.directory.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f.name


def test_reservations_are_disjoint_durable_and_exhaustion_moves_nothing(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    _fill(store_path, pool, 9, batch=2, segment=3)
    a = pool.reserve(4, label="batch A")
    b = IccKeyPool(pool.directory).reserve(3, label="batch B")  # another opener, same truth
    assert (a.start, a.count, b.start, b.count) == (0, 4, 4, 3)
    with pytest.raises(PoolExhausted, match=r"needs 3 keys, 2 are free"):
        pool.reserve(3)
    st = pool.status()
    assert (st.used, st.free, st.reservations) == (7, 2, 2)
    assert json.loads((pool.directory / "pool.json").read_text())["consumed"] == 7
    ka, kb = a.read(0, 4), b.read(0, 3)
    assert not set(ka.moduli) & set(kb.moduli)
    assert a.read(1, 2).moduli == ka.moduli[1:3]  # a sub-range across a segment boundary
    picked = a.pick([3, 0])
    assert picked.moduli == (ka.moduli[3], ka.moduli[0])
    assert picked.parts(0) == ka.parts(3)
    with pytest.raises(Exception, match="outside this reservation"):
        a.read(2, 3)


def test_generation_resumes_to_the_free_count_and_removes_orphans(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    assert _fill(store_path, pool, 4) == 4
    assert _fill(store_path, pool, 4) == 0  # already holds 4 free keys: nothing to do
    pool.reserve(3)
    # what a kill -9 between a segment's file and the state can leave behind
    (pool.directory / "seg-000000000004.bin").write_bytes(b"x" * 100)
    (pool.directory / ".seg-000000000004.bin.abc.part").write_bytes(b"y")
    assert _fill(store_path, pool, 4) == 3
    names = sorted(p.name for p in pool.directory.iterdir() if "seg" in p.name)
    assert names == ["seg-000000000000.bin", "seg-000000000004.bin"]
    assert pool.status().total == 7 and pool.status().free == 4
    with SoftwareKeyStore.load(store_path) as store:
        keys = _all_keys(pool)
        for i in range(7):
            decrypt_key(store, keys, i)


def test_a_pool_under_another_kek_or_size_is_refused(store_path: Path, tmp_path: Path) -> None:
    from cardperso.errors import KeyStoreError, UsageError

    _new_pool(store_path, tmp_path / "p")
    with pytest.raises(UsageError, match="holds 1024-bit keys"):
        _new_pool(store_path, tmp_path / "p", bits=1408)
    other = tmp_path / "other.json"
    generate_file(other)
    with pytest.raises(KeyStoreError, match="not the KEK that protects the pool"):
        _new_pool(other, tmp_path / "p")


def test_cli_generate_and_status_print_counts_never_key_material(
    store_path: Path, tmp_path: Path
) -> None:
    _register()
    root = tmp_path / "pools"
    runner = CliRunner()
    args = ["keys", "pool", "generate", str(store_path), "--bits", "1024", "--count", "6"]
    res = runner.invoke(cli, [*args, "--workers", "2", "--pool-dir", str(root)])
    assert res.exit_code == 0, res.output
    assert "generated 6 1024-bit keys" in res.output and "6 free of 6" in res.output
    res = runner.invoke(cli, ["keys", "pool", "status", str(store_path), "--pool-dir", str(root)])
    assert res.exit_code == 0, res.output
    assert "total 6  used 0  free 6" in res.output and "1024 bits, e=3" in res.output
    keys = _all_keys(IccKeyPool(root / "rsa1024"))
    for m in keys.moduli:
        assert m.hex()[:16] not in res.output.lower()
    missing = runner.invoke(cli, ["keys", "pool", "status", str(store_path), "--pool-dir", "/nx"])
    assert missing.exit_code == 2 and "no ICC key pool" in missing.output


def _cardperso() -> str:
    return str(Path(sys.executable).with_name("cardperso"))


def test_sigterm_stops_generation_with_nothing_half_written(
    store_path: Path, tmp_path: Path
) -> None:
    root = tmp_path / "pools"
    args = ["keys", "pool", "generate", str(store_path), "--bits", "1024", "--count", "100000"]
    proc = subprocess.Popen(
        [_cardperso(), *args, "--workers", "2", "--pool-dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # the workers start, then make keys for a while: 1 s of CPU each (~50 1024-bit keys, several
    # batches of 8 handed back), however long that takes on a loaded machine (a fixed 6 s could
    # end before the command had even imported cardperso and set its SIGTERM handler)
    assert wait_for(lambda: busy_children(proc.pid, 1.0) >= 2, proc), "workers never got busy"
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert b"stopped by SIGTERM" in err
    pool = IccKeyPool(root / "rsa1024")
    st = pool.status()
    assert 0 < st.total < 100000  # the keys finished before the stop were kept
    assert not [p for p in pool.directory.iterdir() if p.name.endswith(".part")]
    with SoftwareKeyStore.load(store_path) as store:
        keys = _all_keys(pool)
        for i in range(st.total):
            decrypt_key(store, keys, i)
    wait_for(lambda: not [w for w in workers if _alive(w)], None, seconds=30)
    assert not [w for w in workers if _alive(w)], "a pool worker outlived the stopped command"


def busy_children(pid: int, cpu_seconds: float) -> int:
    """How many children of ``pid`` have used ``cpu_seconds`` of CPU (from /proc)."""
    busy = 0
    for child in _children(pid):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        busy += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") >= cpu_seconds
    return busy


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes] | None, seconds: float = 180
) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a loaded 2-core CI machine is
    slow, never wrong); a process that ends meanwhile ends the wait. Returns whether the
    condition held (callers assert it where the test needs it)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    return condition()


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_GENERATOR = textwrap.dedent(
    """
    import functools, sys
    from cardperso.cli.keys import open_store
    from cardperso.keystore.pool import IccKeyPool
    from cardperso.keystore.poolgen import fill
    store, pool, count = sys.argv[1], IccKeyPool(sys.argv[2]), int(sys.argv[3])
    fill(pool, functools.partial(open_store, store), count=count, workers=2, batch=2, segment=2)
    """
)


def test_kill_9_of_generation_then_resume(store_path: Path, tmp_path: Path) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    proc = subprocess.Popen([sys.executable, "-c", _GENERATOR, str(store_path), str(pool.directory), "400"])  # fmt: skip
    assert wait_for(lambda: pool.status().total >= 6, proc)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    wait_for(lambda: not [w for w in workers if _alive(w)], None, seconds=30)  # orphans see it
    before = pool.status().total
    assert 6 <= before < 400
    assert _fill(store_path, pool, before + 4) == 4  # resumed, orphans cleaned
    keys = _all_keys(pool)
    assert len(set(keys.moduli)) == before + 4
    with SoftwareKeyStore.load(store_path) as store:
        for i in range(before + 4):
            decrypt_key(store, keys, i)


#: A prep-like consumer: reserves its keys, then writes one output per chunk (atomically),
#: each naming the moduli it used, pausing after each chunk until it reads a line on stdin (the
#: test decides where it stops, not the scheduler of a loaded machine).
_CONSUMER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cardperso.keystore.pool import IccKeyPool
    from cardperso.outputs import atomic_write_text
    pool, out, n, chunk = IccKeyPool(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), 5
    res = pool.reserve(n, label=out.name)          # durable before any output exists
    for c in range(0, n, chunk):
        keys = res.read(c, min(chunk, n - c))      # one read per chunk
        atomic_write_text(out / f"chunk{c:04d}", "\\n".join(m.hex() for m in keys.moduli))
        print("chunk", c, flush=True)
        sys.stdin.readline()
    """
)


def test_kill_9_of_a_consumer_mid_run_then_resume_never_reuses_a_key(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    _fill(store_path, pool, 60, batch=4, segment=8)
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    run1.mkdir()
    run2.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CONSUMER, str(pool.directory), str(run1), "25"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().startswith(b"chunk 0")
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith(b"chunk 5")
    proc.send_signal(signal.SIGKILL)  # waiting after its second chunk
    proc.wait(timeout=30)
    proc.stdin.close()
    proc.stdout.close()
    written = sorted(run1.iterdir())
    assert len(written) == 2  # killed mid-way
    assert pool.status().used == 25  # the whole reservation stays consumed
    done = subprocess.run(
        [sys.executable, "-c", _CONSUMER, str(pool.directory), str(run2), "25"],
        input=b"\n" * 5,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.count(b"chunk") == 5
    used1 = {m for f in written for m in f.read_text().split()}
    used2 = {m for f in run2.iterdir() for m in f.read_text().split()}
    assert len(used2) == 25 and not used1 & used2
    st = pool.status()
    assert (st.used, st.free) == (50, 10)
    with pytest.raises(PoolExhausted):  # 10 free: a run of 11 is refused before it starts
        pool.reserve(11)


def test_concurrent_reservations_never_overlap(store_path: Path, tmp_path: Path) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    _fill(store_path, pool, 40, batch=4, segment=8)
    code = (
        "import sys\nfrom cardperso.keystore.pool import IccKeyPool\n"
        "p = IccKeyPool(sys.argv[1])\n"
        "print(*[p.reserve(1).start for _ in range(10)])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(pool.directory)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    starts = [int(x) for p in procs for x in p.communicate(timeout=120)[0].split()]
    assert sorted(starts) == list(range(40))
    assert pool.status().free == 0


@pytest.mark.hsm
def test_pkcs11_pool_is_encrypted_by_the_tokens_kek_in_each_worker(
    hsm_store_factory: Callable[..., Any], softhsm: Any, tmp_path: Path
) -> None:
    """With a PKCS#11 store each forked worker opens its own token session and encrypts its
    batch under the token's KEK (C_Encrypt, one call per batch); the KEK never leaves it."""
    from cardperso.keystore.pkcs11 import Pkcs11KeyStore

    prefix = f"pool{os.getpid()}/"
    hsm = hsm_store_factory(mode="strict", label_prefix=prefix)
    hsm.generate_key("transport-kek", "3DES", 16)
    opener = functools.partial(
        Pkcs11KeyStore, softhsm.module, softhsm.token_label, softhsm.pin_source,
        mode="strict", label_prefix=prefix,
    )  # fmt: skip
    pool = open_or_create(tmp_path / "p", hsm, bits=BITS, exponent=3, kek="transport-kek")
    assert fill(pool, opener, count=4, workers=2, batch=2).generated == 4
    keys = _all_keys(pool)
    for i in range(4):
        qinv, dq, dp, q, p = (unpad_method2(hsm.unwrap("transport-kek", x)) for x in keys.parts(i))
        assert RsaKey.from_crt(keys.moduli[i], 3, p, q, dp, dq, qinv).bits == BITS


def _broken_opener() -> SoftwareKeyStore:
    raise KeyStoreError("the token is not there")


def test_a_store_that_does_not_open_in_the_workers_fails_the_fill(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "p")
    with pytest.raises(KeyStoreError, match="the token is not there"):
        fill(pool, _broken_opener, count=4, workers=2)
    assert pool.status().total == 0


def test_cli_refusals_are_one_line_usage_errors(store_path: Path, tmp_path: Path) -> None:
    _register()
    runner = CliRunner()
    base = ["keys", "pool", "generate", str(store_path), "--pool-dir", str(tmp_path)]
    odd = runner.invoke(cli, [*base, "--bits", "1032", "--count", "1"])
    assert odd.exit_code == 2 and "multiple of 16" in odd.output
    small = runner.invoke(cli, [*base, "--bits", "512", "--count", "1"])
    assert small.exit_code == 2 and "1024" in small.output
    nokek = runner.invoke(cli, [*base, "--bits", "1024", "--count", "1", "--kek", "no-such-key"])
    assert nokek.exit_code == 1 and "no-such-key" in nokek.output
    assert "Traceback" not in odd.output + small.output + nokek.output
    assert not (tmp_path / "rsa1024").exists() or not IccKeyPool(tmp_path / "rsa1024").exists()


def test_prune_deletes_only_wholly_handed_out_segments_of_old_reservations(
    store_path: Path, tmp_path: Path
) -> None:
    pool = _new_pool(store_path, tmp_path / "rsa1024")
    _fill(store_path, pool, 12, batch=2, segment=4)  # segments 0-3, 4-7, 8-11
    res = pool.reserve(6, label="old run")
    assert pool.prune(3600) == (0, 0)  # the run is young: nothing goes
    later = time.time() + 7200
    assert pool.prune(3600, now=later) == (1, 4)  # keys 0-3; 4-7 still holds free keys
    assert not (pool.directory / "seg-000000000000.bin").exists()
    assert pool.status().pruned == 4 and pool.status().free == 6
    with pytest.raises(KeyStoreError, match=r"keys 0\.\.3 were pruned"):
        res.read(0, 1)
    assert len(res.read(4, 2)) == 2  # the rest of the run's range reads as before
    nxt = pool.reserve(6)
    assert nxt.start == 6 and len(set(nxt.read(0, 6).moduli)) == 6
    assert pool.prune(3600) == (0, 0)  # the new reservation is young
    assert pool.prune(3600, now=later) == (2, 8)
    assert pool.status().pruned == 12
    with pytest.raises(PoolExhausted):
        pool.reserve(1)
    _register()
    args = ["keys", "pool", "prune", str(store_path), "--bits", "1024", "--pool-dir", str(tmp_path)]
    out = CliRunner().invoke(cli, [*args, "--older-than", "0"])
    assert out.exit_code == 0, out.output
    assert "pruned 0 handed-out keys" in out.output and "pruned 12)" in out.output
