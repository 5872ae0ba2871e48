#!/usr/bin/env bash
# Install (Debian's packages) and start a local PostgreSQL server for the several-workers tests
# and demos, listening on 127.0.0.1 only, with a role 'nas' and two databases: nas_optuna (the
# Optuna storage) and nas_mlflow (an MLflow tracking store). Run as root. Prints nothing else
# on success; afterwards:
#   export NAS_MNIST_POSTGRES_URL=postgresql://nas:nas@127.0.0.1:5432/nas_optuna
#   export NAS_MNIST_POSTGRES_MLFLOW_URL=postgresql://nas:nas@127.0.0.1:5432/nas_mlflow
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >/dev/null
sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$version/main/postgresql.conf"
pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
for _ in $(seq 30); do su postgres -c "pg_isready -q -h 127.0.0.1" && break; sleep 1; done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='nas'\"" | grep -q 1 \
  || su postgres -c "psql -q -c \"CREATE ROLE nas LOGIN PASSWORD 'nas'\""
for db in nas_optuna nas_mlflow; do
  su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='$db'\"" | grep -q 1 \
    || su postgres -c "createdb -O nas $db"
done
