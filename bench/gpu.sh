#!/usr/bin/env bash
# Runs the benchmark set on a GPU machine, from the repository root: the goal sizes (`--quick`:
# 10M-parameter optimizer steps, 1M-step schedules, the 32-config sweep with its memory table, the
# LR range test), then the full optimizer table (1M/10M/50M). About 3-5 minutes on one H200; each
# part is capped by `timeout` (300 s + 240 s) so the whole stays under 9 minutes.
#
#   PYTHON=/path/to/python bash bench/gpu.sh          # results under $OUT (or bench/results)
#
# Needs a Python with jax[cuda], optax, chex, numpy, scikit-learn (and torch, optional: with CUDA
# it is timed on the GPU, a CPU-only torch is skipped for the optimizer step and labelled as CPU in
# the sweep and finder tables; torch-lr-finder optional).
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUTDIR="${OUT:-bench/results}"
mkdir -p "$OUTDIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # lets the memory subprocesses share the GPU; device peaks are still exact
export TQDM_DISABLE=1

"$PY" - <<'EOF' || { echo "gpu.sh: JAX does not see a GPU with $PY; nothing run." >&2; exit 3; }
import jax
print("jax", jax.__version__, jax.devices())
assert jax.default_backend() == "gpu", jax.default_backend()
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv 2>/dev/null | tee "$OUTDIR/gpu-info.txt"

status=0
timeout 300 "$PY" bench/run.py --quick --out "$OUTDIR" > "$OUTDIR/gpu-quick.md" 2> "$OUTDIR/gpu-quick.log" || status=$?
echo "quick: exit $status"
timeout 240 "$PY" bench/run.py --only optimizers --out "$OUTDIR" > "$OUTDIR/gpu-optimizers-full.md" 2> "$OUTDIR/gpu-optimizers-full.log" || status=$?
echo "optimizers (full): exit $status"
cat "$OUTDIR/gpu-quick.md" "$OUTDIR/gpu-optimizers-full.md" 2>/dev/null | grep -v '^{'
exit $status
