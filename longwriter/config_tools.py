"""Small helpers every layer uses on configs: where conf/ lives, a plain dict from a config, and a second
preset by name.

Hydra composes one preset per config group; where a value names another preset of a group (the
evaluator's `eval.data`, a reference writer's `model`, a model config's `tokenizer_from`), it is
loaded here, with the run's `paths` so that `${paths.*}` inside it resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from longwriter.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR.parent / "conf"  # the presets Hydra composes from


def plain(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig (interpolations resolved) or any mapping (copied)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if not isinstance(cfg, Mapping):
        raise TypeError(f"expected a config mapping, got {type(cfg).__name__}")
    return dict(cfg)


def load_preset(group: str, name: str, paths: Any = None, *, what: str = "",
                error: Callable[[str], Exception] = ConfigError) -> DictConfig:
    """conf/<group>/<name>.yaml as a config node; `paths` (the run's `paths` block) resolves `${paths.*}`.

    A missing preset raises `error` naming `what` asked for it and the presets there are.
    """
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise error(f"{what or group} {name!r}: no such conf/{group} preset; choose one of {choices}")
    root = OmegaConf.create({"paths": plain(paths) if paths is not None else {}, group: OmegaConf.load(path)})
    return root[group]


def job_output_dir(cfg: Any, kind: str) -> Path:
    """The job's folder: Hydra's run dir inside a Hydra app, else `<paths.output_root>/<kind>/<run_name>`
    (composed without an app: tests, notebooks). `kind` is train, evaluate or prepare."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(str(cfg.paths.output_root)) / kind / str(cfg.run_name)
