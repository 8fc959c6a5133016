#!/usr/bin/env bash
# System packages the test suite needs beyond .venv/: Debian's chromium, for the headless-browser
# check of the MLflow UI (tests/test_mlflow_ui.py; it skips when chromium is missing).
# Idempotent: does nothing when chromium is already on PATH. Never downloads a browser build of
# its own (no playwright/puppeteer): only the distribution's package, through apt.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "[system-deps] chromium present: $(command -v chromium)"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "[system-deps] need root (or sudo) to apt-get install chromium" >&2; exit 1; }
  sudo="sudo"
fi
echo "[system-deps] installing chromium with apt (about 25 s)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "[system-deps] chromium still not on PATH" >&2; exit 1; }
echo "[system-deps] chromium installed: $(command -v chromium)"
