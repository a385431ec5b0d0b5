#!/usr/bin/env bash
# One command for a GPU machine (run from the repository root; no pip install needed there:
# python3 must already have numpy, cupy-cuda13x, torch with CUDA, pytest, hypothesis, matplotlib):
#
#     benchmarks/gpu_check.sh OUTDIR
#
# 1. the GPU test subset (pytest -m gpu)             -> OUTDIR/gpu_tests.txt, gpu_tests.xml
# 2. float64 gradcheck on the GPU for every cell kind,
#    and GPU-vs-CPU equality (plain and fused kernels) -> OUTDIR/gpu_gradcheck.{json,txt}
# 3. the GPU benchmark: npcell on CuPy (plain and fused kernels) vs torch CUDA
#    (nn.LSTM with cuDNN, and an eager autograd loop) -> OUTDIR/bench_gpu.{json,md}
# Every step runs even if an earlier one fails; the exit status is 1 if any failed.
set -u
OUT="${1:?usage: benchmarks/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
PY="${PYTHON:-python3}"
status=0

{
  date
  nvidia-smi || true
  "$PY" -c "import numpy, cupy, torch; print('numpy', numpy.__version__); \
print('cupy', cupy.__version__, 'GPU available', cupy.is_available()); \
print('torch', torch.__version__, 'CUDA', torch.cuda.is_available(), \
'cuDNN', torch.backends.cudnn.version())"
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"

echo "== 1/3 GPU tests"
"$PY" -m pytest -m gpu -q -rs -p no:cacheprovider tests/ --junitxml="$OUT/gpu_tests.xml" \
  2>&1 | tee "$OUT/gpu_tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== 2/3 float64 gradcheck on the GPU for every cell kind, GPU == CPU"
"$PY" benchmarks/gpu_gradcheck.py "$OUT" || status=1

echo "== 3/3 GPU benchmark vs torch CUDA"
"$PY" -m npcell bench --device gpu --kinds lstm gru peephole wmc ulstm --repeats 10 \
  --warmup 3 --out "$OUT" || status=1

echo "gpu_check: results in $OUT (exit $status)"
exit $status
