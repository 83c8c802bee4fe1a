#!/usr/bin/env bash
# Runs the benchmarks whose goals name a device, on a GPU machine, from the repository root, inside a
# wall-clock budget (GPU_BUDGET_S, default 420 s; a part that would start with under 30 s left is
# skipped and said so). In order of the open issues' device goals:
#
#   finder     issue 12: 8 range-test repeats <= 1.5x one on a device with spare parallelism
#   hypergrad  issue 16: forward-mode hypergradient of 3 hyperparameters <= 4x one training run
#   lr_free    issue 13: LR-free steps at 1M/10M parameters <= 1.2x lr_jax's Adam, against the
#              reference PyTorch packages on the same GPU
#   data       issue 12: sweep on streamed NumPy batches >= 0.9x the stacked path; keep_params < 10%
#   sweep      the 32-rate sweep against loops and PyTorch, and its peak device memory
#   optimizers the 10M-parameter optimizer step against Optax and torch fused (quick sizes)
#   tune       issue 16: gradient tuning against the 32-point grid (GPU compute units; not by default)
#   tests      the test suite on the GPU, files that need an installed console script, the network
#              or forced CPU host devices left out (not by default; about 4 minutes with 12 workers)
#
#   PYTHON=/path/to/python bash bench/gpu.sh          # one file per part under $OUT (or bench/results/gpu)
#   GPU_PARTS="data optimizers" bash bench/gpu.sh     # only these parts
#
# Needs a Python with jax[cuda], optax, chex, numpy, scikit-learn and torch with CUDA. The reference
# packages (schedulefree, prodigyopt, dadaptation, dog-optimizer, torch-lr-finder) are taken from
# .whl/site when that folder exists (a git-ignored copy of their pure-Python sources), else from the
# Python's own site-packages.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUTDIR="${OUT:-bench/results/gpu}"
mkdir -p "$OUTDIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # lets the memory subprocesses share the GPU; device peaks are still exact
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # lr_jax from this checkout (the tests part imports it)
if [ -d .whl/site ]; then export PYTHONPATH="$PWD/.whl/site:$PYTHONPATH"; fi
BUDGET="${GPU_BUDGET_S:-420}"
START=$(date +%s)

{
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.memory --format=csv 2>&1
  "$PY" -c "import jax, optax, torch, sys; print(sys.version.split()[0], 'jax', jax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, jax.devices(), torch.cuda.is_available())" 2>&1
  nproc
} > "$OUTDIR/info.txt"
cat "$OUTDIR/info.txt"
[ -n "${GPU_SH_ALLOW_CPU:-}" ] || "$PY" -c "import jax; assert jax.default_backend() == 'gpu', jax.default_backend()" \
  || { echo "gpu.sh: JAX does not see a GPU with $PY; nothing run." >&2; exit 3; }

status=0
part() {  # part NAME CAP_S ARGS...: runs "$PY ARGS" into $OUTDIR/NAME.txt within min(CAP_S, budget left)
  local name=$1 cap=$2
  shift 2
  case " ${GPU_PARTS:-$name} " in *" $name "*) ;; *) return ;; esac
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 30 ]; then
    echo "$name: skipped ($left s of the budget left)"
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  local t0=$(date +%s)
  timeout "$cap" "$PY" "$@" > "$OUTDIR/$name.txt" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=$rc
  echo "$name: exit $rc in $(($(date +%s) - t0)) s (cap $cap s)"
}

part finder 90 bench/bench_finder.py --mode quick
part hypergrad 90 bench/bench_hypergrad.py --mode quick --tasks digits diabetes digits_full --parts cost
part lr_free 120 bench/bench_lr_free.py --mode quick
part data 80 bench/bench_sweep.py --mode quick --data-only
part sweep 90 bench/bench_sweep.py --mode quick
part optimizers 90 bench/run.py --quick --only optimizers --out "${TMPDIR:-/tmp}/lr_jax_gpu_run"  # its report is in optimizers.txt
if [ -n "${GPU_PARTS:-}" ]; then  # only when asked for by name
  part tune 240 bench/bench_hypergrad.py --mode quick --tasks digits diabetes --parts cost tune
  part tests 300 -m pytest -q -n 12 -p no:cacheprovider --tb=line -rfE \
    --ignore=tests/test_packaging.py --ignore=tests/test_bench_smoke.py --ignore=tests/test_distributed.py \
    --ignore=tests/test_sharding.py --ignore=tests/test_sharding_finder.py --ignore=tests/test_sharding_sweep.py tests
fi
echo "total $(($(date +%s) - START)) s"
for f in finder hypergrad lr_free data sweep optimizers tune tests; do
  [ -f "$OUTDIR/$f.txt" ] && { echo "=== $f"; grep -v '^{' "$OUTDIR/$f.txt" | tail -40; }
done
exit $status
