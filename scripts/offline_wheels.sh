#!/usr/bin/env bash
# Download the wheels that nas-mnist needs on an offline GPU host that already has Python 3.12,
# NumPy, pandas, matplotlib, rich, PyYAML and a CUDA build of JAX, but no Keras, Optuna or MLflow
# (and no TensorFlow: train there with KERAS_BACKEND=jax; export SavedModels on a TensorFlow host).
# The wheels also need these of the device tool's 'cuda' image (../.library/device/KINDS.md),
# which are not carried: absl-py, annotated-doc, anyio, certifi, click, cloudpickle, colorama,
# h11, h5py, markupsafe, ml-dtypes, narwhals, packaging, protobuf, python-dateutil, requests,
# tqdm, typing-extensions, urllib3, zipp (each wheel's Requires-Dist, checked on 2026-11-27).
#
#   bash scripts/offline_wheels.sh .whl          # here, where pip reaches the index
#   echo /.whl/ >> .git/info/exclude                     # keep the wheels out of git
#   # there:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl
#   PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax python3 -m nas_mnist search ...
#
# About 35 MB (from ../shared/tools/offline-wheels.sh; importlib-metadata pinned: 10.x needs
# lazy-importer, which is not carried, and MLflow then fails to import). Checked on CPU and on an
# H100 (docs/benchmarks.md, section 5): with exactly these packages and no TensorFlow, a KERAS_BACKEND=jax
# search runs end to end (SQLite study, SQLite MLflow store). Pins follow what this project's CI
# installs; change them with the project.
set -euo pipefail
dest=${1:-.whl}
mkdir -p "$dest"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dest" \
  keras==3.15.1 namex optree \
  optuna==5.0.0 sqlalchemy greenlet alembic mako colorlog \
  mlflow-skinny==3.17.2 mlflow-tracing==3.17.2 cachetools databricks-sdk google-auth rsa pyasn1 \
  pyasn1-modules gitpython gitdb smmap opentelemetry-api opentelemetry-sdk opentelemetry-proto \
  opentelemetry-semantic-conventions sqlparse python-dotenv pydantic pydantic-core annotated-types \
  typing-inspection "importlib-metadata==8.7.0" graphql-core graphql-relay graphene fastapi starlette uvicorn plotly \
  cryptography cffi pycparser tzdata
ls "$dest" | wc -l | xargs echo "wheels in $dest:"
du -sh "$dest"
