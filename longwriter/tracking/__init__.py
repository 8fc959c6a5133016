"""MLflow tracking: runs, params (secrets redacted), per-step metrics, artifacts."""
