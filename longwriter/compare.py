"""`python -m longwriter.compare`: the runs of an MLflow store, or one sweep's trials, side by side.

    python -m longwriter.compare                         # every training run of the store: a table
    python -m longwriter.compare --sweep length_lr_beta-tiny_random   # one study's trials (by study name)
    python -m longwriter.compare --store sqlite:////abs/outputs/mlflow.db --params engine.beta --no-log
    python -m longwriter.compare --include-sft           # SFT warm-ups (kind=sft) too; left out by default

Prints one row per run: name, id, status, the key params (those below, and every param that differs
between the listed runs, e.g. a sweep's searched keys) and metrics (objective, the reward's last value
and its first- vs last-quarter mean). Writes `runs.csv` and comparison plots (`reward_curves.png`,
`objective.png`, and for a sweep `objective_vs_<param>.png`) to --out, and logs them to MLflow: into
the sweep's parent run, or else into a run of kind `compare` (which later listings leave out).
The store is the training default (`MLFLOW_TRACKING_URI`, else outputs/mlflow.db) unless --store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from longwriter.errors import LongwriterError
from longwriter.tracking.analysis_runs import SFT_KIND, is_training_run, log_analysis_files

KEY_PARAMS = ("reward.name", "model.name", "engine.name", "engine.max_steps", "engine.learning_rate", "engine.beta")
REWARD = "reward/total/mean"
COMPARE_KIND = "compare"


def default_tracking() -> tuple[str, str, Path]:
    """(tracking URI, experiment name, output root) as a training run would use them."""
    from hydra import compose, initialize_config_dir

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    return str(cfg.tracking.tracking_uri), str(cfg.tracking.experiment_name), Path(str(cfg.paths.output_root))


def find_runs(client: Any, experiment_id: str, sweep: str | None, include_sft: bool = False
              ) -> tuple[list[Any], Any | None]:
    """(the training runs to compare, oldest first; the sweep's parent run or None). SFT warm-ups only
    with `include_sft`."""
    from longwriter.tracking.sweep_callback import ROLE_TAG, STUDY_TAG

    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"], max_results=5000)
    parent = None
    if sweep:
        parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent" and r.data.tags.get(STUDY_TAG) == sweep]
        if not parents:
            studies = sorted({r.data.tags.get(STUDY_TAG) for r in runs if r.data.tags.get(ROLE_TAG) == "parent"})
            raise LongwriterError(f"--sweep {sweep}: no sweep of that study name in this store; sweeps here: "
                                  f"{', '.join(studies) or '(none)'}")
        parent = parents[-1]
        runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    else:
        include = (SFT_KIND,) if include_sft else ()
        runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "parent" and is_training_run(r, include)]
    return runs, parent


def varying_params(runs: Sequence[Any], limit: int = 8) -> list[str]:
    """Params whose value differs between the runs (a sweep's searched keys, a changed recipe)."""
    keys = sorted({k for r in runs for k in r.data.params})
    varying = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1
               and not k.startswith(("run_name", "paths.", "hydra", "tracking.", "seed_run"))]
    return varying[:limit]


def runs_table(runs: Sequence[Any], histories: dict[str, dict], params: Sequence[str]):
    """One row per run: name, short id, status, params, objective and the reward's quarters."""
    import pandas as pd

    from longwriter.tracking.run_summary import quarter_means

    rows = []
    for run in runs:
        history = histories[run.info.run_id]
        rewards = [v for _, v in history.get(REWARD, [])]
        first, last = quarter_means(rewards)
        row = {"run": run.info.run_name, "run_id": run.info.run_id, "status": run.info.status}
        row.update({key: _number(run.data.params.get(key)) for key in params})
        row.update({"objective": run.data.metrics.get("objective"), "steps": len(rewards),
                    "reward first quarter": first, "reward last quarter": last,
                    "reward last": rewards[-1] if rewards else None})
        rows.append(row)
    return pd.DataFrame(rows)


def _number(text: str | None) -> Any:
    """A param as a number where it is one (MLflow stores params as text)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return text


def comparison_figures(table, histories: dict[str, dict], swept: Sequence[str]) -> dict[str, Any]:
    """Reward per step (one line per run), objective per run, and objective against each swept param."""
    import pandas as pd

    from longwriter.tracking.plots import _pyplot

    plt = _pyplot()
    figures = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for row in table.itertuples():
        points = histories[row.run_id].get(REWARD, [])
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=row.run)
    ax.set(title=f"{REWARD} per step", xlabel="step", ylabel=REWARD)
    if ax.has_data():
        ax.legend(fontsize=7)
    figures["reward_curves.png"] = fig
    scored = table[table.objective.notna()]
    if len(scored):
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(scored)), 4))
        ax.bar(range(len(scored)), scored.objective)
        ax.set_xticks(range(len(scored)), scored.run, rotation=45, ha="right", fontsize=7)
        ax.set(title="objective per run", ylabel="objective")
        figures["objective.png"] = fig
        for key in swept:
            values = pd.to_numeric(scored[key], errors="coerce") if key in scored else None
            if values is not None and values.notna().all():
                fig, ax = plt.subplots(figsize=(5, 4))
                ax.scatter(values, scored.objective)
                ax.set(title=f"objective vs {key}", xlabel=key, ylabel="objective")
                figures[f"objective_vs_{key}.png"] = fig
    return figures


def compare(store: str, experiment: str, sweep: str | None, extra_params: Sequence[str], out: Path,
            log: bool = True, include_sft: bool = False) -> tuple[Any, list[Path], str | None]:
    """Table, written files and the MLflow run the plots were logged to."""
    import mlflow

    from longwriter.tracking.plots import metric_history, png_bytes

    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists():
        raise LongwriterError(f"no MLflow store at {store} (give --store, or run a training first)")
    client = mlflow.MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LongwriterError(f"no experiment {experiment!r} in {store}")
    runs, parent = find_runs(client, found.experiment_id, sweep, include_sft)
    if not runs:
        raise LongwriterError(f"no runs to compare in experiment {experiment!r} of {store}"
                              + (f" under sweep {sweep}" if sweep else ""))
    swept = [k[len("sweep.space."):] for k in (parent.data.params if parent else {}) if k.startswith("sweep.space.")]
    params = list(dict.fromkeys([*KEY_PARAMS, *extra_params, *swept, *varying_params(runs)]))
    params = [p for p in params if any(p in r.data.params for r in runs)]
    histories = {r.info.run_id: metric_history(r.info.run_id, client) for r in runs}
    table = runs_table(runs, histories, params)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv"]
    table.to_csv(written[0], index=False)
    for name, fig in comparison_figures(table, histories, swept or varying_params(runs)).items():
        (out / name).write_bytes(png_bytes(fig))
        written.append(out / name)
    logged_to = _log(client, found.experiment_id, parent, written) if log else None
    return table, written, logged_to


def _log(client: Any, experiment_id: str, parent: Any | None, files: Sequence[Path]) -> str:
    return log_analysis_files(client, experiment_id, files, COMPARE_KIND, "compare",
                              parent.info.run_id if parent is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longwriter.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="MLflow tracking URI (default: the training runs' store)")
    parser.add_argument("--experiment", help="MLflow experiment (default: tracking.experiment_name)")
    parser.add_argument("--sweep", help="an Optuna study name: list that sweep's trials")
    parser.add_argument("--params", default="", help="more params to show, comma-separated")
    parser.add_argument("--out", help="folder for runs.csv and the plots (default: <outputs>/compare/<name>)")
    parser.add_argument("--no-log", action="store_true", help="do not log the table and plots to MLflow")
    parser.add_argument("--include-sft", action="store_true", help="list SFT warm-up runs (kind=sft) too")
    args = parser.parse_args(argv)
    import pandas as pd

    try:
        uri, experiment, output_root = default_tracking() if not (args.store and args.experiment) else (
            args.store, args.experiment, Path("outputs"))
        store, experiment = args.store or uri, args.experiment or experiment
        out = Path(args.out) if args.out else output_root / "compare" / (args.sweep or "runs")
        table, written, logged_to = compare(store, experiment, args.sweep,
                                            [p for p in args.params.split(",") if p], out, log=not args.no_log,
                                            include_sft=args.include_sft)
    except LongwriterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = table.assign(run_id=table.run_id.str[:8])
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(shown.to_string(index=False))
    print(f"\nwritten to {out}: {', '.join(p.name for p in written)}")
    if logged_to:
        print(f"logged to MLflow run {logged_to} (artifacts compare/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
