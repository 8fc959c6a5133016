#!/usr/bin/env bash
# Writing-RL mechanics demo on the CPU against the TEST ENVIRONMENT judge (not a writing-quality judge):
# starts longwriter.testing.length_criteria_judge on 127.0.0.1:${PORT:-8765}, runs
# `experiment=writing_rl_cpu_testenv` (extra arguments are Hydra overrides; `-m sweep=seeds` runs it
# over seeds 0,1,2 as one seed group, docs/seeds.md), stops the judge.
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
# Hydra takes -m only before the overrides.
flags=(); overrides=()
for arg in "$@"; do
  case "$arg" in -m|--multirun) flags+=("$arg") ;; *) overrides+=("$arg") ;; esac
done
"$PY" -m longwriter.train ${flags[@]+"${flags[@]}"} experiment=writing_rl_cpu_testenv \
  judge.base_url="http://127.0.0.1:$PORT/v1" ${overrides[@]+"${overrides[@]}"}
