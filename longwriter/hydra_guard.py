"""Hydra callback listed by every entry point's config: checks made before Hydra writes anything,
and secret-free copies of the files Hydra would save.

- on_run_start (single runs, before the run folder exists): a sweep preset without `-m`, a
  `resume_from=` that is not a run folder, a run name that is already taken and a config value of
  the wrong type or range (`longwriter.config_checks`) each stop with one `error:` line (exit 2)
  and nothing written.
- on_job_start: `.hydra/{config,hydra,overrides}.yaml` written with secrets hidden
  (`longwriter.tracking.redact.save_redacted_hydra_files`; the configs set
  `hydra.output_subdir: null`, so Hydra's own unredacted copies are never written); a resumed run
  keeps its original `.hydra/` and, once the resume is accepted, gets `.hydra/resume-<timestamp>/`
  (`longwriter.resume.save_resume_hydra_files`).
  A multirun's `multirun.yaml` is rewritten redacted.
- on_multirun_start: the launcher's `#<n> : <overrides>` log lines are redacted.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from longwriter.tracking.redact import HYDRA_DIR, redact_hydra, redact_override, save_redacted_hydra_files

RUN_INFO_FILE = "mlflow_run.json"  # written by longwriter.tracking.mlflow_run (kept import-light here)


def _stop(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def sweep_without_multirun_error(config: DictConfig) -> str | None:
    sweep = OmegaConf.select(config, "hydra.runtime.choices.sweep", default=None)
    if sweep in (None, "null"):
        return None
    optuna = "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower()
    return (f"sweep={sweep} is {'an Optuna sweep' if optuna else 'a multirun'} preset and needs multirun: add -m, e.g. "
            f"`python -m longwriter.train -m sweep={sweep} ...`")


def resume_error(resume_from: str | None, entry: str | None = "train") -> str | None:
    if not resume_from:
        return None
    path = Path(str(resume_from)).expanduser()
    if not (path / RUN_INFO_FILE).exists():
        return (f"resume_from={resume_from} is not a folder of an earlier run (no {RUN_INFO_FILE}); pass the "
                f"output folder of the run to continue, e.g. outputs/{entry or 'train'}/<run_name>")
    from longwriter.resume import wrong_kind_error

    return wrong_kind_error(path.resolve(), str(entry))


def taken_name_error(run_dir: Path, run_name: str, can_resume: bool) -> str | None:
    if not (run_dir / RUN_INFO_FILE).exists():
        return None
    fix = f", or continue that run with resume_from={run_dir}" if can_resume else ""
    return f"run_name={run_name} is taken: {run_dir} holds an earlier run; choose another run_name{fix}"


def value_error(config: DictConfig, entry: str | None) -> str | None:
    """Bad config values (`longwriter.config_checks`), found before the run folder exists."""
    from longwriter.config_checks import config_problems

    problems = config_problems(config, str(entry)) if entry else []
    return "; ".join(problems) or None


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
        error = error or resume_error(resume_from, kwargs.get("config_name"))
        if error is None and not resume_from:
            run_dir = Path(str(config.hydra.run.dir))
            error = taken_name_error(run_dir, str(config.get("run_name")), can_resume="resume_from" in config)
        error = error or value_error(config, kwargs.get("config_name"))
        if error:
            _stop(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for name in ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins.hydra_optuna_sweeper._impl"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RedactOverrides) for f in logger.filters):
                logger.addFilter(_RedactOverrides())

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A resume writes its copies only once it is accepted (`save_resume_hydra_files`): a refused
        # resume leaves the run's folder as it was.
        if not config.get("resume_from"):
            save_redacted_hydra_files(config, Path(str(config.hydra.runtime.output_dir)) / HYDRA_DIR)
        multirun_file = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        if multirun_file.exists():
            plain = OmegaConf.to_container(OmegaConf.load(multirun_file), resolve=False)
            multirun_file.write_text(OmegaConf.to_yaml(redact_hydra(plain)))
