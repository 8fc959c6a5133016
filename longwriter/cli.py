"""Shared behaviour of the Hydra entry points (train, evaluate, prepare)."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from longwriter.errors import LongwriterError


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def user_errors_exit_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A LongwriterError becomes one `error: ...` line and exit code 2, not a traceback.

    In a sweep (`-m`) the error is re-raised instead, so the sweeper records the trial as failed.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LongwriterError as err:
            if _in_multirun():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: the MLflow run ends FAILED (with the reason) and a sweep marks its
    running trial and parent run FAILED, instead of leaving them RUNNING (see docs/sweeps.md).
    Installed by the training entry points (train, sft) for `signal.SIGTERM`."""
    import signal

    print(f"error: stopped by signal {signal.Signals(signum).name}", file=sys.stderr)
    raise SystemExit(128 + signum)


def quiet_request_logs() -> None:
    """One INFO line per judge HTTP request drowns the progress bars: keep the HTTP clients at WARNING."""
    import logging

    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
