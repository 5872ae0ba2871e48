#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh virtual environment and run a 2-trial
# search from a folder outside the checkout, through the CLI and through the Python API, and
# writes its report: the package data (search spaces, the report's templates) must come with the
# package. Usage: bash scripts/check_wheel.sh DATA.npz
set -euo pipefail
data="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet --upgrade pip build
"$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" "$repo" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/nas_mnist-*.whl

mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$work/venv/bin/nas-mnist" search --trials 2 --epochs 1 --max-train-samples 500 --data "$data" \
    --storage sqlite:///s.db --study-name wheel --tracking-uri sqlite:///m.db --baselines none \
    --space small_cnn --no-progress
"$work/venv/bin/nas-mnist" report --storage sqlite:///s.db --study-name wheel --out report \
    --data "$data"
test -s report/report.html
"$work/venv/bin/python" - "$data" <<'PY'
import sys

import nas_mnist

assert "site-packages" in nas_mnist.__file__, nas_mnist.__file__  # the installed wheel
result = nas_mnist.search(trials=2, epochs=1, max_train_samples=500, data=sys.argv[1],
                          storage="sqlite:///api.db", study_name="api",
                          tracking_uri="sqlite:///m.db", baselines="none", progress=False)
print(result.leaderboard[["trial", "state", "val_accuracy", "params"]])
print("best trial:", None if result.best_trial is None else result.best_trial.number)
# Impossible architectures (pruned before training) stay in the study but do not count.
from nas_mnist.study.trial_counts import count_finished

assert count_finished(result.study) == 2 and result.best_trial is not None
PY
echo "wheel check: the installed wheel ran search, report and the API from $work/elsewhere"
