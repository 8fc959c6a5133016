"""Resume is the same run, or nothing.

A training run writes its own resolved config (secrets hidden) to `<run>/run_config.yaml` when it
starts. `resume_from=<run>` continues from that config, not from today's defaults: the command
line's overrides are compared with it, and an override that would change what is trained (recipe,
data, model, group size, learning rate, ...) is refused with one message listing every such key.
Only the keys in `SAFE_ON_RESUME` (how long to train, how often to log/save, judge client limits)
may change; they are applied and recorded in `<run>/resumes.jsonl` and the MLflow run.

Hidden values (secrets, `extra_body`) are not in the saved config: they come from this invocation.

A resume continues from the newest intact checkpoint. A checkpoint is published by the last file
its save writes, `checkpoint_complete.json` (written to a temporary name, then renamed: a kill or a
full disk never leaves half of it), which lists every file and its size; a folder without it, or
whose files no longer match it, or whose safetensors are cut short, is damaged: the resume says so
in one line and takes the newest intact one before it, or stops with one message when none is.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf, open_dict

from longwriter.errors import ConfigError, LongwriterError
from longwriter.tracking.redact import HYDRA_DIR, REDACTED, flatten, redact, write_hydra_files

logger = logging.getLogger(__name__)

RUN_CONFIG_FILE = "run_config.yaml"
RESUMES_FILE = "resumes.jsonl"
CHECKPOINT_COMPLETE_FILE = "checkpoint_complete.json"  # written last by a save (see the module doc)
# Keys a resume may change: they say how long and how visibly to train, not what is trained.
SAFE_ON_RESUME = (
    "engine.max_steps", "engine.logging_steps", "engine.save_steps", "engine.save_total_limit",
    "engine.sample_every", "engine.num_samples_logged", "stop_after_unknown_steps",
    "judge.concurrency", "judge.rpm", "judge.tpm", "judge.timeout_s", "judge.max_retries", "judge.backoff_s",
    "judge.max_backoff_s", "eval.at_end",
    "sft.max_steps", "sft.logging_steps", "sft.save_steps", "sft.save_total_limit", "sft.num_samples_logged",
    "sft.sample_max_new_tokens",
)
_IGNORED = ("resume_from", "hydra")


def _is_safe(key: str) -> bool:
    return any(key == s or key.startswith(s + ".") for s in SAFE_ON_RESUME)


def save_run_config(cfg: DictConfig, output_dir: Path) -> Path:
    """Written once, when a run starts (never on resume: the run's config does not change)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RUN_CONFIG_FILE
    plain = redact(OmegaConf.to_container(cfg, resolve=True))
    plain.pop("resume_from", None)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    return path


def run_kind(output_dir: Path) -> str | None:
    """`sft` or `train`: which entry point wrote the run folder's config (None: no config there)."""
    path = output_dir / RUN_CONFIG_FILE
    if not path.exists():
        return None
    try:
        saved = OmegaConf.load(path)
    except Exception:  # noqa: BLE001 - an unreadable config is load_run_config's to report
        return None
    return "sft" if "sft" in saved else "train"


def wrong_kind_error(output_dir: Path, entry: str) -> str | None:
    """A resume of an SFT run's folder by train (or the other way round): one message naming the right command."""
    kind = run_kind(output_dir)
    if kind is None or kind == entry or entry not in ("sft", "train"):
        return None
    what = ("an SFT run (python -m longwriter.sft)" if kind == "sft"
            else "an RL training run (python -m longwriter.train)")
    return (f"resume_from={output_dir} is the folder of {what}; continue it with python -m longwriter.{kind} "
            f"resume_from={output_dir}" + (f", or start RL from its model with model.path={output_dir}/final_model"
                                           if kind == "sft" else ""))


def load_run_config(output_dir: Path) -> DictConfig:
    path = output_dir / RUN_CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"resume_from={output_dir} has no {RUN_CONFIG_FILE} (the run was started by an older "
                          f"version), so its config cannot be restored; start a new run instead")
    return OmegaConf.load(path)


def _baseline(config_name: str = "train") -> DictConfig:
    """The config with no command-line overrides (to tell which keys the user's overrides touch)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from longwriter.config_tools import CONF_DIR

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=[])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=[])


def _command_line_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task]
    except ValueError:
        return []


def touched_keys(cfg: DictConfig, overrides: Iterable[str] | None = None, baseline: DictConfig | None = None
                 ) -> set[str]:
    """Leaf keys whose value the command line changed (group choices expand to their leaves)."""
    overrides = list(_command_line_overrides() if overrides is None else overrides)
    if not overrides:
        return set()
    base = flatten(OmegaConf.to_container(baseline if baseline is not None else _baseline(), resolve=False))
    now = flatten(OmegaConf.to_container(cfg, resolve=False))
    keys = {k for k in set(base) | set(now) if base.get(k, _MISSING) != now.get(k, _MISSING)}
    # An override that repeats a default still names its key (e.g. `engine.max_steps=2` twice).
    typed = _typed_keys(overrides)
    keys.update(k for k in now if _is_typed(k, typed))
    return {k for k in keys if not k.startswith(_IGNORED)}


def _typed_keys(overrides: Iterable[str]) -> set[str]:
    """The config keys written out on the command line (`data.limit=36`), not group choices (`data=x`)."""
    typed = set()
    for override in overrides:
        key, sep, _ = override.partition("=")
        key = key.lstrip("+~")
        if sep and "/" not in key and "@" not in key and not key.startswith("hydra"):
            typed.add(key)
    return typed


def _is_typed(key: str, typed: set[str]) -> bool:
    return any(key == t or key.startswith(t + ".") for t in typed)


class _Missing:
    def __repr__(self) -> str:
        return "<unset>"


_MISSING = _Missing()


def restore_config(cfg: DictConfig, output_dir: Path, overrides: Iterable[str] | None = None,
                   baseline: DictConfig | None = None, entry: str = "train"
                   ) -> tuple[DictConfig, dict[str, tuple[Any, Any]]]:
    """(the run's own config with this invocation's safe changes, {key: (old, new)} accepted).

    `entry`: the config the run was composed from (train or sft). Raises ConfigError listing every
    override that would change what is trained.
    """
    overrides = list(_command_line_overrides() if overrides is None else overrides)
    wrong = wrong_kind_error(output_dir, entry)
    if wrong:
        raise ConfigError(wrong)
    saved = load_run_config(output_dir)
    if overrides and baseline is None:
        baseline = _baseline(entry)
    saved_flat = flatten(OmegaConf.to_container(saved, resolve=False))
    current_flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    refused, accepted = {}, {}
    for key in sorted(touched_keys(cfg, overrides, baseline)):
        old, new = saved_flat.get(key, _MISSING), current_flat.get(key, _MISSING)
        if old == REDACTED or old == new:
            continue
        (accepted if _is_safe(key) else refused)[key] = (old, new)
    # A swapped config group is listed by its name, not leaf by leaf, except the keys the user typed
    # (`reward=longwriter_zero data.limit=36` swaps data to builtin too: both changes are listed).
    typed = _typed_keys(overrides)
    for group in [k[:-len(".name")] for k in refused if k.endswith(".name")]:
        refused = {k: v for k, v in refused.items()
                   if not k.startswith(group + ".") or k == group + ".name" or _is_typed(k, typed - {group})}
    if refused:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
        raise ConfigError(
            f"resume_from={output_dir} continues that run with its own config, but these overrides would change "
            f"what is trained: {listed}. Drop them to resume, or start a new run (a new run_name) to train "
            f"differently. A resume may change only: {', '.join(SAFE_ON_RESUME)}")
    restored = OmegaConf.create(OmegaConf.to_container(saved, resolve=False))
    with open_dict(restored):
        for key in list(cfg.keys()):  # top-level keys newer than the saved config
            if key not in restored:
                restored[key] = cfg[key]
        for key, (_, new) in accepted.items():
            OmegaConf.update(restored, key, new, force_add=True)
        for key, old in saved_flat.items():  # hidden values come from this invocation
            if old == REDACTED:
                OmegaConf.update(restored, key, OmegaConf.select(cfg, key), force_add=True)
        restored.resume_from = str(output_dir)
    return restored, accepted


def record_resume(output_dir: Path, accepted: dict[str, tuple[Any, Any]]) -> dict:
    """Append this resume to `<run>/resumes.jsonl` (`log_resume` copies it into the MLflow run)."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "changed": {k: {"from": old, "to": new} for k, (old, new) in accepted.items()}}
    with (output_dir / RESUMES_FILE).open("a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    if accepted:
        logger.info("resume accepts: %s", ", ".join(f"{k} {o!r} -> {n!r}" for k, (o, n) in accepted.items()))
    return record


def save_resume_hydra_files(task_cfg: DictConfig, output_dir: Path) -> Path | None:
    """For an accepted resume, inside the Hydra job: `.hydra/resume-<timestamp>/` (the run's own
    `.hydra/` stays as its first start wrote it)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except ValueError:  # not a Hydra app
        return None
    folder = output_dir / HYDRA_DIR / f"resume-{time.strftime('%Y%m%d-%H%M%S')}"
    write_hydra_files(OmegaConf.to_container(task_cfg, resolve=False),
                      {"hydra": OmegaConf.to_container(hydra_cfg, resolve=False)}, folder)
    return folder


def checkpoint_step(checkpoint: str | None) -> int:
    """`.../checkpoint-12` (TRL) or `.../global_step_12` (verl) -> 12; no checkpoint -> 0 (training restarts from the beginning)."""
    if not checkpoint:
        return 0
    digits = re.search(r"(\d+)$", Path(checkpoint).name)
    return int(digits.group(1)) if digits else 0


def log_resume(cfg: DictConfig, run_id: str, output_dir: Path, checkpoint: str | None) -> None:
    """Inside the reopened MLflow run: drop the metrics logged after the checkpoint (they are logged
    again, so each step keeps one value) and record the resume (tags `longwriter.resumes`,
    `resumed.<key>` for each changed key, artifact `resumes/resume_<n>.json`)."""
    import mlflow

    from longwriter.tracking.mlflow_run import rewind_metrics

    rewind_metrics(str(cfg.tracking.tracking_uri), run_id, checkpoint_step(checkpoint))
    lines = (output_dir / RESUMES_FILE).read_text().splitlines() if (output_dir / RESUMES_FILE).exists() else []
    record = json.loads(lines[-1]) if lines else {"changed": {}}
    record["checkpoint"] = checkpoint
    mlflow.log_text(json.dumps(record, indent=1, default=str), f"resumes/resume_{len(lines):03d}.json")
    mlflow.set_tags({"longwriter.resumes": str(len(lines)),
                     **{f"resumed.{k}": str(v["to"]) for k, v in record["changed"].items()}})


class DamagedCheckpointError(LongwriterError):
    """Checkpoints exist but none is intact: nothing to resume from."""


def mark_checkpoint_complete(folder: Path) -> Path:
    """Publish a finished save: `checkpoint_complete.json` listing every file of `folder` and its size,
    written under a temporary name and renamed (so it is whole or absent)."""
    files = {str(f.relative_to(folder)): f.stat().st_size for f in sorted(folder.rglob("*"))
             if f.is_file() and f.name != CHECKPOINT_COMPLETE_FILE and not f.name.startswith(".")}
    final = folder / CHECKPOINT_COMPLETE_FILE
    temporary = folder / f".{CHECKPOINT_COMPLETE_FILE}.tmp"
    with temporary.open("w") as fh:
        json.dump({"step": checkpoint_step(str(folder)), "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, final)
    return final


def _safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (its header names more bytes than the file has), or None."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                return f"{path.name} is cut short ({size} bytes, its header alone needs {header_len + 8})"
            header = json.loads(fh.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError):
        return f"{path.name} has no readable safetensors header ({size} bytes)"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size != 8 + header_len + end:
        return f"{path.name} is cut short ({size} of {8 + header_len + end} bytes)"
    return None


def checkpoint_problem(folder: Path, marker_expected: bool = True) -> str | None:
    """Why a TRL checkpoint folder cannot be resumed from, or None when it is intact.

    `marker_expected=False` reads a run started before checkpoints were marked complete: then only
    the Trainer's last file (trainer_state.json) and the safetensors are checked."""
    marker = folder / CHECKPOINT_COMPLETE_FILE
    if marker.exists():
        try:
            listed = json.loads(marker.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            return f"{CHECKPOINT_COMPLETE_FILE} is unreadable"
        for name, size in listed.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} is {path.stat().st_size} bytes, {size} when saved"
    elif marker_expected:
        return f"the save did not finish (no {CHECKPOINT_COMPLETE_FILE})"
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "trainer_state.json is missing or unreadable (the save did not finish)"
    for path in sorted(folder.rglob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return problem
    return None


def newest_intact_checkpoint(folder: Path, what: str = "") -> str | None:
    """The newest `checkpoint-N` under `folder` that is intact (`checkpoint_problem`); damaged newer
    ones are named in one warning line. None when there is no checkpoint at all; when there are some
    but none is intact, a DamagedCheckpointError naming each and what to do."""
    found = [(int(p.name.split("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
             if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)] if folder.is_dir() else []
    found.sort(reverse=True)
    marker_expected = any((p / CHECKPOINT_COMPLETE_FILE).exists() for _, p in found)
    damaged = []
    for _, path in found:
        problem = checkpoint_problem(path, marker_expected)
        if problem is None:
            if damaged:
                logger.warning("resume: skipping damaged checkpoint %s; resuming from %s",
                               "; ".join(damaged), path.name)
            return str(path)
        damaged.append(f"{path.name} ({problem})")
        # Unpublished until a save rewrites it whole: a stale marker must not vouch for a half re-save.
        (path / CHECKPOINT_COMPLETE_FILE).unlink(missing_ok=True)
    if damaged:
        raise DamagedCheckpointError(
            f"{what or folder}: no intact checkpoint to resume from: {'; '.join(damaged)}. Delete the damaged "
            f"checkpoint folder(s) under {folder} to restart this run from step 0, or start a new run (another run_name)")
    return None
