#!/usr/bin/env bash
# Open the MLflow UI on the project's local store: http://127.0.0.1:${PORT:-5000}
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
store="${MLFLOW_STORE:-sqlite:///$root/outputs/mlflow.db}"
exec "$root/.venv/bin/mlflow" ui --backend-store-uri "$store" --host 127.0.0.1 --port "${PORT:-5000}" --workers 1
