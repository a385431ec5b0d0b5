#!/usr/bin/env bash
# The whole GPU check as one command (run from the repository root; nothing to install: the GPU
# machine's python3 has numpy, cupy-cuda13x, torch with CUDA, matplotlib, tqdm, scikit-learn,
# pytest and hypothesis):
#
#     PYTHONPATH=. benchmarks/gpu_check.sh OUTDIR             # on the GPU machine (~4-6 min)
#     benchmarks/gpu_check.sh --dry-run OUTDIR                # on a CPU: all but the device
#
# Parts, each under its own time limit (seconds), so one failure or hang loses only itself;
# the limits add up to 480 s, inside the 8 minutes the check may take:
#   versions   20  nvidia-smi, numpy/cupy/torch/cuDNN versions      -> versions.txt
#   gradcheck  90  float64 full gradcheck of every cell kind on GPU -> gradcheck.json
#   equality   45  GPU vs CPU: forward and every gradient, f64/f32  -> equality.json
#   kernels    45  lstm plain CuPy vs ElementwiseKernels, bench shapes -> kernels.json
#   tests     120  pytest -m gpu on the files holding GPU tests     -> gpu_tests.txt/.xml
#   bench     150  npcell on CuPy vs torch CUDA (cuDNN, eager loop), bench shapes + H=512,
#                  H=1024; no case starts after 130 s                -> bench_gpu.json/.md
#   report     10  everything above in one place                    -> summary.json, summary.md
# Every part runs even if an earlier one failed; the exit status is 1 if any failed.
#
# --dry-run (automatic when CuPy sees no GPU): tests/fake_cupy.py stands in for CuPy, torch runs
# on the CPU, shapes are tiny, and packages the GPU machine lacks cannot be imported
# (benchmarks/dry_run_site/sitecustomize.py). It shows that everything but the device runs.
set -u
DRY=""
if [ "${1:-}" = "--dry-run" ]; then DRY="explicit"; shift; fi
OUT="${1:?usage: benchmarks/gpu_check.sh [--dry-run] OUTDIR}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python3}"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg TQDM_DISABLE=1 PYTHONHASHSEED=0
# Plugins are loaded by name below: an installed plugin the GPU machine lacks changes nothing.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1

if [ -z "$DRY" ] && ! "$PY" -c "import sys, cupy; sys.exit(0 if cupy.is_available() else 1)" \
    >/dev/null 2>&1; then
  DRY="automatic: CuPy is missing or sees no GPU"
fi
FLAGS=()
if [ -n "$DRY" ]; then
  echo "gpu_check: DRY RUN ($DRY): the CPU double of CuPy, torch on the CPU, tiny shapes"
  export PYTHONPATH="benchmarks/dry_run_site:$PYTHONPATH"
  FLAGS=(--dry-run)
fi
printf 'part\tstatus\tseconds\n' > "$OUT/parts.tsv"
echo "${DRY:-gpu}" > "$OUT/mode.txt"
status=0

run_part() {  # run_part NAME LIMIT_S COMMAND...: log to OUT/NAME.log, record in parts.tsv
  local name="$1" limit="$2" rc start
  shift 2
  echo "== $name (limit ${limit}s)"
  start=$(date +%s)
  if command -v timeout >/dev/null; then
    timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  else
    "$@" > "$OUT/$name.log" 2>&1
  fi
  rc=$?
  tail -n 4 "$OUT/$name.log"
  case $rc in
    0) state=ok ;;
    124|137) state="timeout after ${limit}s" ;;
    *) state="failed (exit $rc)" ;;
  esac
  [ "$rc" -eq 0 ] || status=1
  printf '%s\t%s\t%s\n' "$name" "$state" "$(( $(date +%s) - start ))" >> "$OUT/parts.tsv"
  echo "   $name: $state"
}

VERSIONS='
import subprocess, sys
import numpy, torch
print("python", sys.version.split()[0], "numpy", numpy.__version__)
try:
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout)
except (OSError, subprocess.SubprocessError) as err:
    print("nvidia-smi:", err)
import cupy
print("cupy", cupy.__version__, "GPU available", cupy.is_available())
if cupy.is_available():
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    print("device", name.decode() if isinstance(name, bytes) else name)
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "CUDA", cuda, "cuDNN", torch.backends.cudnn.version() if cuda else None)
'

# The files that hold GPU tests (a marked test or a gpu-marked parameter).
TEST_FILES=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')

run_part versions 20 "$PY" -c "$VERSIONS"
cp "$OUT/versions.log" "$OUT/versions.txt"
run_part gradcheck 90 "$PY" benchmarks/gpu_checks.py gradcheck "$OUT" ${FLAGS[@]+"${FLAGS[@]}"}
run_part equality 45 "$PY" benchmarks/gpu_checks.py equality "$OUT" ${FLAGS[@]+"${FLAGS[@]}"}
run_part kernels 45 "$PY" benchmarks/gpu_checks.py kernels "$OUT" ${FLAGS[@]+"${FLAGS[@]}"}
# shellcheck disable=SC2086 - TEST_FILES is a list of paths without spaces
run_part tests 120 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider -p _hypothesis_pytestplugin \
  --junitxml="$OUT/gpu_tests.xml" $TEST_FILES
cp "$OUT/tests.log" "$OUT/gpu_tests.txt"
run_part bench 150 "$PY" benchmarks/gpu_checks.py bench "$OUT" --budget-s 130 ${FLAGS[@]+"${FLAGS[@]}"}
run_part report 10 "$PY" benchmarks/gpu_report.py "$OUT"
cat "$OUT/summary.md" 2>/dev/null | head -n 40

echo "gpu_check: ${DRY:+DRY RUN, }results in $OUT (exit $status)"
exit $status
