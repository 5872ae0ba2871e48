#!/usr/bin/env bash
# What a user's GPU search needs, checked on a machine with an NVIDIA GPU and no network, and the
# numbers behind docs/benchmarks.md's GPU section, printed as one table.
#
#   bash scripts/offline_wheels.sh .whl      # here, where pip reaches the index (~35 MB)
#   # there, from the repository root, with MNIST carried as an .npz:
#   bash scripts/gpu_check.sh --wheels .whl --data mnist.npz --out gpu_check
#   bash scripts/gpu_check.sh --cpu-smoke --data mnist.npz   # the same steps, tiny, on a CPU
#
# Steps: install the wheels into a private folder (none with --wheels unset: the packages must
# import already); train on KERAS_BACKEND=jax (unless KERAS_BACKEND is set); seconds per epoch
# of s000_m1 on all 50,000 images with XLA and mixed precision on and off; s002_m1 with and
# without the final recipe's augmentation; s000_m1's first epoch fed by Keras' arrays and by
# FullBatches (one batch shape); complete trials per hour at --jobs 1, 2 and 4 on one GPU
# (scripts/bench_gpu.py); a short search end to end. Writes epochs.csv, augmentation.csv,
# batches.csv, jobs.csv, table.md and search.log under --out. Exit status 0 when every step ran,
# 1 when one failed (the others still run), 2 for a wrong flag.
set -uo pipefail

usage() { sed -n 2,17p "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
wheels="" data="${NAS_MNIST_DATA:-}" out="gpu_check" smoke=0 window=40 jobs="1,2,4"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --window) window="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --cpu-smoke) smoke=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$data" || ! -f "$data" ]]; then
  echo "gpu_check.sh: --data: MNIST .npz not found ('$data'); pass --data PATH or set NAS_MNIST_DATA" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
mkdir -p "$out" && out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
if [[ -n "$wheels" ]]; then
  site=$(mktemp -d)/site
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "$wheels"/*.whl || { echo "gpu_check.sh: installing the wheels of $wheels failed" >&2; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=${KERAS_BACKEND:-jax}
export PYTHONUNBUFFERED=1
if [[ $smoke == 1 ]]; then
  epochs_flags=(--epochs 2 --max-train-samples 1000 --steps-without-xla 3)
  aug_flags=(--epochs 2 --max-train-samples 500)
  batches_flags=(--epochs 2 --max-train-samples 500)
  jobs_flags=(--epochs 1 --max-train-samples 500 --window 15 --jobs 1,2 --max-params 300000)
  search_flags=(--trials 2 --epochs 1 --max-train-samples 500)
else
  epochs_flags=(--epochs 4)
  aug_flags=(--epochs 3)
  batches_flags=(--epochs 3 --max-train-samples 20000)
  jobs_flags=(--epochs 2 --max-train-samples 10000 --window "$window" --jobs "$jobs")
  search_flags=(--trials 3 --epochs 1 --max-train-samples 5000)
fi
failed=0
step() { echo "== $1"; shift; "$@" || { echo "gpu_check.sh: step failed: $*" >&2; failed=1; }; }
step "devices" "$python" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__, keras.backend.backend())"
step "seconds per epoch" "$python" "$repo/scripts/bench_gpu.py" epochs --data "$data" \
  --csv "$out/epochs.csv" "${epochs_flags[@]}"
step "augmentation" "$python" "$repo/scripts/bench_gpu.py" augmentation --data "$data" \
  --csv "$out/augmentation.csv" "${aug_flags[@]}"
step "one batch shape" "$python" "$repo/scripts/bench_gpu.py" batches --data "$data" \
  --csv "$out/batches.csv" "${batches_flags[@]}"
step "trials per hour" "$python" "$repo/scripts/bench_gpu.py" jobs --data "$data" \
  --csv "$out/jobs.csv" "${jobs_flags[@]}"
work=$(mktemp -d)
step "a short search end to end" bash -c "cd '$work' && '$python' -m nas_mnist search \
  ${search_flags[*]} --data '$data' --storage sqlite:///study.db --tracking-uri sqlite:///mlflow.db \
  --baselines s000_m1 --final-top-k 0 --no-progress > '$out/search.log' 2>&1; rc=\$?; tail -5 '$out/search.log'; exit \$rc"
"$python" "$repo/scripts/bench_gpu.py" table --epochs-csv "$out/epochs.csv" \
  --jobs-csv "$out/jobs.csv" --augmentation-csv "$out/augmentation.csv" \
  --batches-csv "$out/batches.csv" | tee "$out/table.md"
rm -rf "$work"
exit $failed
