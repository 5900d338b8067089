#!/usr/bin/env bash
# GPU figures in one command: every real-size, random-weight benchmark that runs on a GPU host
# with no network, each part under its own timeout, every figure as JSON in --out DIR.
#
#   make gpu-wheels                        # here, once: the wheels such a host lacks (.whl/gpu-suite)
#   bench/gpu_suite.sh --out DIR           # on the GPU host, with .whl/gpu-suite beside it: <= 9 min
#   bench/gpu_suite.sh --tiny --out DIR    # tiny shapes on the CPU: the suite's own check (make test)
#
# Parts, in this order (JSON in DIR, rewritten as each part measures; output in DIR/PART.log):
#   host             python, torch, CUDA device, installed packages          host.json
#   orpheus          Orpheus 3B + SNAC (bf16, built on the GPU): first the
#                    streams sweep (1/4/16/32/64 real-time streams: first
#                    audio p50/p95, real-time factor, largest playback gap),
#                    then one stream's tokens/s vs real time and the
#                    bandwidth bound, static cache (CUDA default) and eager  orpheus.json
#   voxtral-latency  Voxtral Mini 3B + Realtime 4B shapes: end of turn →
#                    first token per mode, decode tokens/s                   voxtral-latency.json
#   voxtral-modes    the two reply modes on one utterance                    voxtral-modes.json
#   gpu-tests        the `gpu`-marked pytest tests                           gpu-tests.json
# and summary.json: each part's outcome. A part that cannot run is one line saying why; the
# suite goes on and exits 0 if every part that could run passed (1 otherwise). A part past its
# limit is stopped with every process it started (services in sessions of their own included),
# and keeps the JSON it wrote so far; the benchmark scripts start no step that would not end
# inside the part's limit (their --budget-s, from GPU_SUITE_PART_LIMIT_S).
#
# Options: --only PART,PART   --wheels DIR   --python PY   --budget-s S (default 540; --tiny 1200)
#          --overlay DIR (make the overlay venv there and keep it; default: a temporary one)
#          (--only install: the install step and the host part alone)
#          --limits PART=S,PART=S (a part's own limit, under the suite's budget)
#          --orpheus-args "..." --latency-args "..." --modes-args "..." --pytest-args "..."
#          (appended to that part's command line: the scripts' own flags pass through).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="" TINY=0 ONLY="" WHEELS="$ROOT/.whl/gpu-suite" PY="${PYTHON:-python3}" BUDGET_S="" LIMITS="" OVERLAY=""
ORPHEUS_ARGS="" LATENCY_ARGS="" MODES_ARGS="" PYTEST_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --only) ONLY=",$2,"; shift 2 ;;
        --wheels) WHEELS="$2"; shift 2 ;;
        --python) PY="$2"; shift 2 ;;
        --overlay) OVERLAY="$2"; shift 2 ;;
        --budget-s) BUDGET_S="$2"; shift 2 ;;
        --limits) LIMITS=",$2,"; shift 2 ;;
        --orpheus-args) ORPHEUS_ARGS="$2"; shift 2 ;;
        --latency-args) LATENCY_ARGS="$2"; shift 2 ;;
        --modes-args) MODES_ARGS="$2"; shift 2 ;;
        --pytest-args) PYTEST_ARGS="$2"; shift 2 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "gpu_suite: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "gpu_suite: --out DIR is required" >&2; exit 2; }
# 9 minutes on a GPU host: one 10-minute device call, less a minute for the call's own start,
# transfers and margin. --tiny on a shared 2-core CPU (CI) is slower and has no lease to fit.
[ -n "$BUDGET_S" ] || { [ "$TINY" = 1 ] && BUDGET_S=1200 || BUDGET_S=540; }
# An absolute interpreter path (kept a link: a venv's python must stay the venv's), as the tests run elsewhere.
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
# Folders given relative to where the suite was started (it runs from $ROOT, pip from $WORK).
case "$WHEELS" in /*) ;; *) WHEELS="$PWD/$WHEELS" ;; esac
case "$OVERLAY" in ""|/*) ;; *) OVERLAY="$PWD/$OVERLAY" ;; esac
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STARTED=$SECONDS
RESULTS="$OUT/.parts.tsv"
: >"$RESULTS"

say() { echo "gpu_suite: $*"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; say "$1: $2${4:+ — $4}"; }
wanted() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }

# The host's torch, CUDA and packages stay; what it lacks comes from the wheel folder, installed
# with no network into an overlay venv that sees the host's packages behind its own (a .pth of
# the host's site dirs: works whether the host python is itself a venv or not). Nothing of the
# host's environment is changed.
install_wheels() {
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        record install skipped 0 "no wheels in $WHEELS (make gpu-wheels); running on $PY as it is"
        return
    fi
    local venv="${OVERLAY:-$WORK/venv}" started=$SECONDS site
    "$PY" -m venv --without-pip "$venv" >"$OUT/install.log" 2>&1 || {
        record install failed 0 "$PY -m venv failed (see install.log); running on $PY as it is"; return; }
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # addsitedir, not bare paths: the host's own .pth files (namespace and path hooks) apply too.
    "$PY" -c 'import sys; print("".join(f"import site; site.addsitedir({p!r})\n" for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
        >"$site/_host_site_packages.pth"
    "$venv/bin/python" bench/gpu_wheels.py requirements >"$WORK/requirements.txt"
    # No index: nothing comes from the network, only from the folder (the command goes to install.log).
    local pip=("$venv/bin/python" -m pip install --disable-pip-version-check --no-index --no-compile
        --find-links "$WHEELS" voxmesh -r "$WORK/requirements.txt")
    echo "+ ${pip[*]}" >>"$OUT/install.log"
    # From $WORK: in the source tree, pip would take its voxmesh.egg-info for an installed voxmesh.
    if (cd "$WORK" && timeout 120 "${pip[@]}") >>"$OUT/install.log" 2>&1; then
        PY="$venv/bin/python"
        record install ok $((SECONDS - started)) "from $WHEELS into an overlay venv"
    else
        record install failed $((SECONDS - started)) \
            "$(grep -E '^ERROR' "$OUT/install.log" | head -1) (install.log); running on $PY as it is"
    fi
}

# kill_marked MARKER: SIGKILL every process whose environment holds GPU_SUITE_PART=MARKER; prints
# how many. timeout(1) stops only its own process group, and a part's services run in sessions of
# their own (ServiceProcess: start_new_session=True), but they inherit the marker with the rest
# of the environment.
kill_marked() {
    local env pid killed=0
    for env in /proc/[0-9]*/environ; do
        pid="${env#/proc/}" && pid="${pid%/environ}"
        if grep -qzx "GPU_SUITE_PART=$1" "$env" 2>/dev/null && kill -9 "$pid" 2>/dev/null; then
            killed=$((killed + 1))
        fi
    done
    echo "$killed"
}

# run_part NAME LIMIT_S COMMAND...: one part under its own timeout, never past the suite's budget.
run_part() {
    local name="$1" limit="$2" started=$SECONDS left rc why marker strays
    shift 2
    wanted "$name" || return 0
    [[ "$LIMITS" == *",$name="* ]] && limit="${LIMITS#*,"$name"=}" && limit="${limit%%,*}"
    left=$((BUDGET_S - (SECONDS - STARTED) - 5))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        record "$name" skipped 0 "the suite's ${BUDGET_S} s budget is spent"
        return
    fi
    marker="$name-$$-$RANDOM"
    GPU_SUITE_PART="$marker" GPU_SUITE_PART_LIMIT_S="$limit" \
        timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    strays="$(kill_marked "$marker")"
    [ "$strays" -gt 0 ] && strays="; $strays of its processes were left and killed" || strays=""
    if [ $rc -eq 0 ]; then
        record "$name" ok $((SECONDS - started)) "${strays#; }"
        return
    fi
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        why="timed out after ${limit} s (figures so far in $name.json and $name.log)$strays"
    else
        why="exit $rc: $(grep -vE '^\s*$' "$OUT/$name.log" | tail -1 | cut -c1-200) ($name.log)$strays"
    fi
    record "$name" failed $((SECONDS - started)) "$why"
}

cd "$ROOT" || exit 2
install_wheels

# From here on, python runs outside the source tree: the repository's voxmesh/ folder (no generated
# stubs, no services/) must not shadow the installed package. Scripts put their own folder first.
"$PY" - "$OUT/host.json" >"$OUT/host.log" 2>&1 <<'EOF'
import importlib.metadata as md, json, platform, sys
host = {"python": platform.python_version(), "executable": sys.executable, "machine": platform.machine()}
try:
    import torch
    host["torch"] = torch.__version__
    host["cuda"] = torch.cuda.is_available()
    host["device"] = torch.cuda.get_device_name(0) if host["cuda"] else "cpu"
except Exception as exc:  # a host with no torch still records what it has
    host["torch_error"] = repr(exc)
host["packages"] = sorted(f"{d.metadata['Name']}=={d.version}" for d in md.distributions())
json.dump(host, open(sys.argv[1], "w"), indent=1)
print(host.get("device"), "torch", host.get("torch"), "cuda", host.get("cuda"))
EOF
CUDA="$("$PY" -c 'import json, sys; print(int(bool(json.load(open(sys.argv[1])).get("cuda"))))' "$OUT/host.json" 2>/dev/null || echo 0)"
record host ok 0 "$(tail -1 "$OUT/host.log")"

if [ "$TINY" = 1 ]; then
    DEVICE=cpu
    ORPHEUS=(--tiny --device cpu --repeats 1 --streams 1,2 --tokens 28)
    LATENCY=(--size tiny --device cpu --utterances 1 --sessions 1 --turns 1 --reply-tokens 4)
    MODES=(--size tiny --device cpu --turns 1 --seconds 1 --reply-tokens 4)
    T_ORPHEUS=300 T_LATENCY=300 T_MODES=300 T_TESTS=300
elif [ "$CUDA" = 1 ]; then
    DEVICE=cuda
    # Sized to fit one 10-minute call with margin (README, "GPU figures": the costs on paper).
    # Orpheus first (the figure the project is judged by): phrases of at most 5 frames (0.43 s)
    # keep the 117 streams of the sweep (234 phrases) near 8.2k tokens, as the transformers
    # engine takes turns on its compiled decode step (~80 s at ~100 tokens/s). The latency
    # grid: 1 and 5 s utterances at 1 and 4 sessions, one round (stream turns feed audio at
    # real-time pace: ~15 s of the part). Install and host take ~30 s of the 540.
    ORPHEUS=(--device cuda --tokens 35 --streams 1,4,16,32,64 --repeats 2)
    LATENCY=(--size full --device cuda --utterances 1,5 --sessions 1,4 --turns 1 --reply-tokens 16)
    MODES=(--size full --device cuda --turns 2 --seconds 3)
    T_ORPHEUS=240 T_LATENCY=150 T_MODES=70 T_TESTS=50
else
    for part in orpheus voxtral-latency voxtral-modes gpu-tests; do
        wanted "$part" && record "$part" skipped 0 "no CUDA device (torch.cuda.is_available() is false; --tiny runs on the CPU)"
    done
    DEVICE=""
fi

if [ -n "$DEVICE" ]; then
    # shellcheck disable=SC2086  # the *_ARGS strings are word-split on purpose: they are flags.
    run_part orpheus "$T_ORPHEUS" "$PY" bench/orpheus_gpu.py "${ORPHEUS[@]}" --json "$OUT/orpheus.json" $ORPHEUS_ARGS
    # shellcheck disable=SC2086
    run_part voxtral-latency "$T_LATENCY" "$PY" bench/voxtral_latency.py "${LATENCY[@]}" \
        --json "$OUT/voxtral-latency.json" $LATENCY_ARGS
    # shellcheck disable=SC2086
    run_part voxtral-modes "$T_MODES" "$PY" bench/voxtral_modes.py "${MODES[@]}" --json "$OUT/voxtral-modes.json" $MODES_ARGS
    # The tests run from a copy outside the source tree (see above); their config comes with them.
    mkdir -p "$WORK/t" && cp -r tests pyproject.toml "$WORK/t/"
    # shellcheck disable=SC2086
    run_part gpu-tests "$T_TESTS" bash -c 'cd "$1" && shift && exec "$@"' _ "$WORK/t" \
        "$PY" -m pytest -p no:cacheprovider -m gpu -q -rs --junitxml "$OUT/gpu-tests.xml" \
        tests/integration/test_gpu_engines.py tests/unit/test_gpu_memory.py $PYTEST_ARGS
    if [ -f "$OUT/gpu-tests.xml" ]; then
        "$PY" - "$OUT/gpu-tests.xml" "$OUT/gpu-tests.json" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
cases = []
for case in ET.parse(sys.argv[1]).iter("testcase"):
    outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
    cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                  "seconds": float(case.get("time", 0))})
counts = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "failure", "error", "skipped")}
json.dump({"counts": counts, "tests": cases}, open(sys.argv[2], "w"), indent=1)
EOF
    fi
fi

"$PY" - "$RESULTS" "$OUT/summary.json" "$TINY" "$((SECONDS - STARTED))" <<'EOF'
import json, sys
parts = []
for line in open(sys.argv[1]):
    name, outcome, seconds, why = line.rstrip("\n").split("\t")
    parts.append({"part": name, "outcome": outcome, "seconds": int(seconds), "why": why})
json.dump({"tiny": sys.argv[3] == "1", "wall_s": int(sys.argv[4]), "parts": parts}, open(sys.argv[2], "w"), indent=1)
EOF
rm -f "$RESULTS"
say "done in $((SECONDS - STARTED)) s; figures in $OUT"
# Exit 1 only when a part that could run failed: a part skipped for a missing GPU is not a failure.
! grep -q '"outcome": "failed"' "$OUT/summary.json"
