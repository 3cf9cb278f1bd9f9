#!/bin/sh
# Every figure of benchmarks/README.md, one command each, at the sizes the README states.
#
# Usage (from anywhere; as root, for the PC/SC lab's pcscd):
#     benchmarks/run_all.sh [OUTDIR [NAME...]]   # default /tmp/cardperso-bench-results/<UTC time>
#
# With NAMEs, only those commands run (the names below, e.g. `run_all.sh /tmp/r prep_3des
# prep_aes`); `run_all.sh OUTDIR nonprep` runs every command except the data-preparation ones
# (prep_*, keypool_prep), `run_all.sh OUTDIR prep` only those.
#
# Each command's output goes to OUTDIR/<name>.txt (every script prints the machine, the commit,
# its configuration and the load average at start and end); this script prints one line per
# command with the load average when it started. Runs one command at a time (2 CPUs: two
# benchmarks at once would measure each other). About 20 minutes on a 2-CPU machine at load 2-3 (the prep commands
# about 6 of them, 00:40-00:46 on 2026-12-05).
# Exit status 1 if any command failed (the others still run).
#
# The code measured is the checkout this script lives in (its src/ goes first on PYTHONPATH), so
# a clean worktree of a commit can be measured with another checkout's virtualenv:
#     git worktree add --detach /tmp/wt HEAD
#     PYTHON=$PWD/.venv/bin/python /tmp/wt/benchmarks/run_all.sh
set -u
cd "$(dirname "$0")/.."
out=${1:-/tmp/cardperso-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
status=0
[ $# -gt 0 ] && shift
only=" $* "

wanted() { # wanted NAME: is NAME among the selected commands?
    case "$only" in
    "  ") return 0 ;;
    *" $1 "*) return 0 ;;
    esac
    case "$1" in
    prep_* | keypool_prep) group=prep ;;
    *) group=nonprep ;;
    esac
    case "$only" in *" $group "*) return 0 ;; esac
    return 1
}

run() { # run NAME COMMAND...
    name=$1
    shift
    wanted "$name" || return 0
    echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): $name: $*"
    if "$@" >"$out/$name.txt" 2>&1; then
        echo "   done $(date -u +%H:%M:%S)"
    else
        echo "   FAILED (exit $?): see $out/$name.txt"
        status=1
    fi
}

git log -1 --format='commit %h %cI %s' >"$out/commit.txt"
git status --porcelain --untracked-files=no -- src benchmarks >>"$out/commit.txt"
echo "results in $out; $(head -1 "$out/commit.txt")"

run apdu_roundtrip $py benchmarks/bench_apdu_roundtrip.py --apdus 3000 --rounds 15
run line_apdu $py benchmarks/bench_line.py --part apdu --rounds 5 --cards 50
run line_apdu_prepared $py benchmarks/bench_line.py --part apdu --store-data-order prepared --rounds 1 --cards 5
run host_profile $py benchmarks/bench_host_profile.py --cards 200
run hsm $py benchmarks/bench_hsm.py --cards 2000 --repeat 3
run kcv $py benchmarks/bench_kcv.py --keys 30000 --repeat 5
run line_throughput $py benchmarks/bench_line.py --part zero,latency --line-rounds 3
run registry $py benchmarks/bench_registry.py --jobs 4000 --records 10000 --workers 1,4,8
run bank_1 $py benchmarks/bench_bank.py --count 50000 --perso 50 --pcsc 12 --stations 1
run bank_4 $py benchmarks/bench_bank.py --count 50000 --pcsc 16 --stations 4
run sm2 $py benchmarks/bench_sm2.py --count 300 --rounds 3
run pki_card $py benchmarks/bench_pki_card.py --cards 20
run web_office $py benchmarks/bench_web_office.py --records 10000 --repeat 5
run keypool_gen $py benchmarks/bench_keypool.py --part gen --bits 1024,1408 --keys 600,210 --gen-rounds 3
run keypool_oda $py benchmarks/bench_keypool.py --part oda --cards 1000 --rounds 3
run keypool_hsm $py benchmarks/bench_keypool.py --part hsm --cards 1000
# data preparation (issue 14): 1M records, 1 and 2 workers, the naive per-card baseline in the
# same run; the AES KEK (new key stores' default) and the sample store's 3DES KEK (the profile's),
# three interleaved rounds each (medians: the CPUs' speed drifts between runs); the per-stage tables
run prep_aes $py benchmarks/bench_prep.py --count 1000000 --workers 1,2 --no-oda --kek transport-kek-aes --rounds 3 --naive 10000
run prep_3des $py benchmarks/bench_prep.py --count 1000000 --workers 1,2 --no-oda --rounds 3
# every record with a photo of its own (hard links: each photo opened, read and checked)
run prep_distinct_photos $py benchmarks/bench_prep.py --count 1000000 --workers 1,2 --no-oda --kek transport-kek-aes --distinct-photos
run prep_breakdown_3des $py benchmarks/bench_prep.py --breakdown
run prep_breakdown_aes $py benchmarks/bench_prep.py --breakdown --kek transport-kek-aes
run prep_naive $py benchmarks/bench_prep_naive.py --count 20000
run keypool_prep $py benchmarks/bench_keypool.py --part prep --records 3000
exit $status
