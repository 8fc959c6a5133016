#!/usr/bin/env bash
# The main job: set up .venv (idempotent), then a short real GRPO run on the embedded default
# (CPU, offline SmolLM2-135M, local MLflow store). Extra arguments are Hydra overrides, e.g.
#   bash scripts/train.sh reward=pairwise engine.max_steps=4
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/python" -m longwriter.train "$@"
