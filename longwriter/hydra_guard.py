"""Hydra callback listed by every entry point's config: checks made before Hydra writes anything,
and secret-free copies of the files Hydra would save.

- on_run_start (single runs, before the run folder exists): a sweep preset without `-m`, a
  `resume_from=` that is not a run folder, and a run name that is already taken each stop with one
  `error:` line (exit 2) and nothing written.
- on_job_start: `.hydra/{config,hydra,overrides}.yaml` written with secrets hidden (the configs set
  `hydra.output_subdir: null`, so Hydra's own unredacted copies are never written); a resumed run
  keeps its original `.hydra/` and gets `.hydra/resume-<timestamp>/`. A multirun's `multirun.yaml`
  is rewritten redacted.
- on_multirun_start: the launcher's `#<n> : <overrides>` log lines are redacted.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from longwriter.tracking.redact import redact, redact_override, redact_overrides

RUN_INFO_FILE = "mlflow_run.json"  # written by longwriter.tracking.mlflow_run (kept import-light here)
HYDRA_DIR = ".hydra"


def _stop(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def sweep_without_multirun_error(config: DictConfig) -> str | None:
    sweep = OmegaConf.select(config, "hydra.runtime.choices.sweep", default=None)
    if sweep in (None, "null"):
        return None
    return (f"sweep={sweep} is an Optuna sweep preset and needs multirun: add -m, e.g. "
            f"`python -m longwriter.train -m sweep={sweep} ...`")


def resume_error(resume_from: str | None) -> str | None:
    if not resume_from:
        return None
    path = Path(str(resume_from)).expanduser()
    if not (path / RUN_INFO_FILE).exists():
        return (f"resume_from={resume_from} is not a folder of an earlier run (no {RUN_INFO_FILE}); pass the "
                f"output folder of the run to continue, e.g. outputs/train/<run_name>")
    return None


def taken_name_error(run_dir: Path, run_name: str, can_resume: bool) -> str | None:
    if not (run_dir / RUN_INFO_FILE).exists():
        return None
    fix = f", or continue that run with resume_from={run_dir}" if can_resume else ""
    return f"run_name={run_name} is taken: {run_dir} holds an earlier run; choose another run_name{fix}"


class _RedactOverrides(logging.Filter):
    """Hides secret values in the launcher's `#0 : a=1 judge.extra_body.key=...` lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message:
            record.msg = " ".join(redact_override(word) for word in message.split(" "))
            record.args = None
        return True


class RunGuardCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        error = sweep_without_multirun_error(config)
        resume_from = config.get("resume_from")
        error = error or resume_error(resume_from)
        if error is None and not resume_from:
            run_dir = Path(str(config.hydra.run.dir))
            error = taken_name_error(run_dir, str(config.get("run_name")), can_resume="resume_from" in config)
        if error:
            _stop(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for name in ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RedactOverrides) for f in logger.filters):
                logger.addFilter(_RedactOverrides())

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        output_dir = Path(str(config.hydra.runtime.output_dir))
        folder = output_dir / HYDRA_DIR
        if config.get("resume_from"):
            folder = folder / f"resume-{time.strftime('%Y%m%d-%H%M%S')}"
        save_redacted_hydra_files(config, folder)
        multirun_file = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        if multirun_file.exists():
            plain = OmegaConf.to_container(OmegaConf.load(multirun_file), resolve=False)
            multirun_file.write_text(OmegaConf.to_yaml(_redact_hydra(plain)))


def _redact_hydra(plain: dict) -> dict:
    plain = redact(plain)
    hydra = plain.get("hydra") if "hydra" in plain else plain
    overrides = hydra.get("overrides") or {}
    for kind in ("task", "hydra"):
        if overrides.get(kind):
            overrides[kind] = redact_overrides(overrides[kind])
    job = hydra.get("job") or {}
    if job.get("override_dirname"):
        job["override_dirname"] = ",".join(redact_overrides(job["override_dirname"].split(",")))
    return plain


def save_redacted_hydra_files(config: DictConfig, folder: Path) -> None:
    """Hydra's three files, with the values of secret-like keys and opaque subtrees hidden."""
    folder.mkdir(parents=True, exist_ok=True)
    plain = OmegaConf.to_container(config, resolve=False)
    hydra_part = {"hydra": plain.pop("hydra")}
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(redact(plain)))
    (folder / "hydra.yaml").write_text(OmegaConf.to_yaml(_redact_hydra(hydra_part)))
    overrides = redact_overrides(OmegaConf.to_container(config.hydra.overrides.task))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
