"""Where the project lives, so that configs can use absolute paths from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR.parent / "conf"


def project_root() -> Path:
    """The checkout that holds conf/ (or LONGWRITER_HOME when set, e.g. for installed copies)."""
    env = os.environ.get("LONGWRITER_HOME")
    if env:
        return Path(env).resolve()
    return PACKAGE_DIR.parent


def register_resolvers() -> None:
    """Register `${lw_root:}` and `${lw_or:a,b}` once, and the typed config schemas
    (`longwriter.config_schema`); Hydra apps and the compose API both call this before composing."""
    from longwriter.config_schema import register_config_schemas

    register_config_schemas()
    if not OmegaConf.has_resolver("lw_root"):
        OmegaConf.register_new_resolver("lw_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("lw_or"):
        # First value unless it is null/empty (oc.select only falls back when the key is missing).
        OmegaConf.register_new_resolver("lw_or", lambda value, default: default if value in (None, "") else value)
