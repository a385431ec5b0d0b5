#!/usr/bin/env bash
# The WMC / FW-LSTM replication of docs/results.md (claims A-D), end to end.
#
#   scripts/replicate.sh full    # the recorded runs: hours on 2 cores; writes docs/replication/
#                                # *.json and figures/; every run resumes from its checkpoint
#   scripts/replicate.sh smoke   # the same pipeline at toy size in a few minutes, into
#                                # runs/replicate-smoke (nothing in docs/ or figures/ changes)
#
# One BLAS thread per run and at most two runs at a time (a 2-core machine); on a Dask cluster
# pass --cluster ADDRESS to the python scripts instead (docs/results.md says what that costs).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
PY=${PYTHON:-python}
mode=${1:-smoke}

case "$mode" in
full)
    $PY scripts/replicate_adding.py --T 200 --seeds 0 1 2 3 4 --jobs 2                 # A
    $PY scripts/replicate_adding.py --T 200 --optimizer sgd --lr 1e-2 --seeds 0 --jobs 2  # B
    $PY scripts/replicate_adding.py --T 400 --cells lstm wmc --seeds 0 --jobs 2           # B
    $PY scripts/figure2_distribution.py &                                               # C
    $PY scripts/replicate_art.py --K 4 8 --seeds 3 4 5 6 7 --jobs 1                      # D
    wait
    $PY scripts/replication_report.py
    ;;
smoke)
    out=runs/replicate-smoke
    docs=(--summary-dir "$out/summaries")
    # T=10/20 instead of 200/400, under the full run's names so the report reads them
    $PY scripts/replicate_adding.py --T 10 --seeds 0 1 --steps 300 --eval-every 100 \
        --n-test 64 --stop-below 0.05 --out "$out/adding" --tag adding_T200_adam "${docs[@]}"
    $PY scripts/replicate_adding.py --T 10 --optimizer sgd --lr 1e-2 --seeds 0 --steps 200 \
        --eval-every 100 --n-test 64 --out "$out/adding" --tag adding_T200_sgd "${docs[@]}"
    $PY scripts/replicate_adding.py --T 20 --cells lstm wmc --seeds 0 --steps 200 \
        --eval-every 100 --n-test 64 --out "$out/adding" --tag adding_T400_adam "${docs[@]}"
    $PY scripts/figure2_distribution.py --seeds 2 --train-seeds 1 --iterations 2 \
        --out "$out/figure2" --json "$out/summaries/figure2_distribution.json" \
        --figure "$out/figures/figure2_distribution.png"
    $PY scripts/replicate_art.py --K 4 8 --seeds 0 --steps 20 --eval-every 10 \
        --out "$out/art" "${docs[@]}"
    $PY scripts/replication_report.py --summary-dir "$out/summaries" --figures "$out/figures" \
        --no-docs
    ;;
*)
    echo "usage: scripts/replicate.sh full|smoke (got '$mode')" >&2
    exit 2
    ;;
esac
