#!/usr/bin/env bash
# Writing-RL mechanics demo on the CPU against the TEST ENVIRONMENT judge (not a writing-quality judge):
# starts longwriter.testing.length_criteria_judge on 127.0.0.1:${PORT:-8765}, runs
# `experiment=writing_rl_cpu_testenv` (extra arguments are Hydra overrides), stops the judge.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PORT=${PORT:-8765}
"$PY" -m longwriter.testing.length_criteria_judge --port "$PORT" &
JUDGE=$!
trap 'kill $JUDGE 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
  sleep 0.2
done
"$PY" -m longwriter.train experiment=writing_rl_cpu_testenv judge.base_url="http://127.0.0.1:$PORT/v1" "$@"
