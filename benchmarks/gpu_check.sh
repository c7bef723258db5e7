#!/usr/bin/env bash
# The GPU check of issue 16 (item 6), one prepared script, under 8 minutes on one H200:
#   1. the device tests on CUDA (tests/ebm_samplers/test_devices.py, the cases marked `cuda`);
#   2. the end-to-end benchmark on CUDA (benchmarks/end_to_end.py --device cuda): the hand-written eager loop, our
#      eager path, compile_step=True, and the hand-written step under torch.compile in its default mode and in
#      mode="reduce-overhead" (CUDA graphs), at 1,000 chains on both targets; and at 20,000 chains on the 100-d
#      Gaussian for the eager and compiled paths.
# Prints `name: value` lines; JSON and markdown go to $OUT (the device runner's folder) or benchmarks/results/gpu.
#
#   bash benchmarks/gpu_check.sh              run it (from anywhere; PYTHON=... picks the interpreter)
#   bash benchmarks/gpu_check.sh --dry-run    the same steps on the cpu, tiny sizes: checks the script itself
#
# Without a CUDA device it stops at once with a one-line reason and status 3. A failing step does not stop the
# ones after it; the status is then 1 and `failed_steps:` names them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry_run=0
if [[ $# -gt 0 ]]; then
    if [[ $1 == --dry-run && $# -eq 1 ]]; then
        dry_run=1
    else
        echo "gpu_check.sh: unknown arguments '$*'; expected nothing or --dry-run" >&2
        exit 2
    fi
fi

if [[ -z ${PYTHON:-} ]]; then
    for candidate in .venv/bin/python python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then
            PYTHON=$candidate
            break
        fi
    done
fi
if [[ -z ${PYTHON:-} ]] || ! "$PYTHON" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "gpu_check.sh: no Python with torch and numpy found (tried PYTHON, .venv/bin/python, python3, python)" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
results=${OUT:-benchmarks/results/gpu}
if [[ $dry_run -eq 1 ]]; then
    results=$(mktemp -d)
fi
mkdir -p "$results"

if [[ $dry_run -eq 0 ]]; then
    "$PYTHON" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    print("gpu_check.sh: torch sees no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine,"
          " or with --dry-run to check the script on the cpu", file=sys.stderr)
    sys.exit(3)
print(f"device: {torch.cuda.get_device_name(0)}")
print(f"torch: {torch.__version__}")
print(f"cuda: {torch.version.cuda}")
EOF
    device=cuda
    marker=cuda
    chains=1000
    rows=hand,eager,compiled,hand_compiled,hand_graphs
    big_chains=20000
    sizes=(--n-steps 400 --repeats 3)
else
    echo "dry_run: on the cpu, tiny sizes; results in $results"
    device=cpu
    marker="not cuda and not slow"
    chains=100
    rows=hand,eager,hand_graphs # compiling on a small shared cpu takes minutes per row
    big_chains=300
    sizes=(--n-steps 10 --repeats 1)
fi

failed=()
started=$SECONDS

# step NAME SECONDS COMMAND...: run COMMAND under a time limit, print its status and time, remember failures
step() {
    local name=$1 limit=$2 status=0 begin=$SECONDS
    shift 2
    timeout --kill-after=10 "$limit" "$@" || status=$?
    echo "$name.status: $status"
    echo "$name.seconds: $((SECONDS - begin))"
    if [[ $status -ne 0 ]]; then
        failed+=("$name")
    fi
}

# time limits (seconds) that keep the whole script under 8 minutes: 120 + 2 x 130 + 80 = 460
tests_log="$results/tests.log"
step tests 120 bash -c "set -o pipefail; '$PYTHON' -m pytest tests/ebm_samplers/test_devices.py -m '$marker' -q \
    -p no:cacheprovider -rs 2>&1 | tee '$tests_log'"
summary=$(tail -n 1 "$tests_log")
for outcome in passed failed skipped error; do
    count=$(grep -oE "[0-9]+ $outcome" <<<"$summary" | grep -oE '^[0-9]+' || echo 0)
    echo "tests.$outcome: $count"
done

# no --threads 1: torch.compile's worker processes would share one CPU (the process is pinned to --threads CPUs)
bench=("$PYTHON" benchmarks/end_to_end.py --device "$device" --threads 4 "${sizes[@]}")
for target in mixture gaussian100; do # one process per target: a time-out loses one target's figures, not both
    step "end_to_end_${chains}_$target" 130 "${bench[@]}" --chains "$chains" --targets "$target" --rows "$rows" \
        --out "$results/end_to_end_${device}_${chains}_$target.json"
done
step "end_to_end_${big_chains}_gaussian100" 80 "${bench[@]}" --chains "$big_chains" --targets gaussian100 \
    --rows hand,eager,compiled --out "$results/end_to_end_${device}_${big_chains}_gaussian100.json"

echo "total_seconds: $((SECONDS - started))"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed_steps: ${failed[*]}"
    exit 1
fi
echo "failed_steps: none"
