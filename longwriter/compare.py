"""`python -m longwriter.compare`: the runs of an MLflow store, or one sweep's trials, side by side.

    python -m longwriter.compare                         # training runs, one row per config (its seeds grouped)
    python -m longwriter.compare --by run                # one row per run (`seed` shown when it differs)
    python -m longwriter.compare --sweep length_lr_beta-tiny_random   # one study's trials (or a seed group's seeds)
    python -m longwriter.compare --smooth 0 --band ci95 --all        # raw curves, 95% CI bands, every run
    python -m longwriter.compare --include-sft           # SFT warm-ups (kind=sft) too; left out by default
    python -m longwriter.compare --store sqlite:////abs/outputs/mlflow.db --params engine.beta --no-log

Runs whose params differ only in `seed` (and in what names one run: run_name, folders, store) are one
group (`longwriter/tracking/seed_stats.py`). By group (the default without --sweep): one row per group
with n (finished seeds), the failed ones (listed, never averaged), the seeds, the key params and every
param that differs between the groups, and per figure (objective, reward first/last quarter and its
change, following rho, held-out scores before/after) the mean over the finished seeds with min and
max. By run (the default with --sweep): one row per run: name, id, status, params (`seed` first when
it differs), objective and the reward's first- vs last-quarter mean. Runs of a random-init model
(model=tiny_random: mechanics checks) and evaluation/analysis runs are left out unless --all.

Writes `runs.csv` and plots to --out: `reward_curves.png` (one line per group: the mean over its seeds,
smoothed like TensorBoard's slider (`--smooth`, EMA weight, 0 = raw), with a band: min..max over its
seeds, or the 95% CI of the mean (`--band ci95`); by run, one line per run; distinct colours for any
number; the legend says which),
`objective.png` (per group the mean with its band and each seed as a dot) and for a sweep
`objective_vs_<param>.png`; logs them to MLflow: into the sweep's parent run, or else into a run of
kind `compare` (which later listings leave out). The store is the training default
(`MLFLOW_TRACKING_URI`, else outputs/mlflow.db) unless --store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from longwriter.errors import LongwriterError
from longwriter.tracking.analysis_runs import KIND_TAG, SFT_KIND, is_training_run, log_analysis_files
from longwriter.tracking.seed_stats import BANDS, SEED_KEYS, GroupAggregate, is_run_identity

KEY_PARAMS = ("reward.name", "model.name", "engine.name", "engine.max_steps", "engine.learning_rate", "engine.beta")
REWARD = "reward/total/mean"
COMPARE_KIND = "compare"
# The figures of a group's row, when any group has them (seed_stats.learning_figures names).
TABLE_FIGURES = ("objective", "reward/first_quarter", "reward/last_quarter", "reward/change", "following_rho/change",
                 "heldout/length_score/before", "heldout/length_score/after", "heldout/length_following/spearman/after")
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default slider position


def default_tracking() -> tuple[str, str, Path]:
    """(tracking URI, experiment name, output root) as a training run would use them."""
    from hydra import compose, initialize_config_dir

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train")
    return str(cfg.tracking.tracking_uri), str(cfg.tracking.experiment_name), Path(str(cfg.paths.output_root))


def is_random_model_run(run: Any) -> bool:
    """A run of a randomly initialised model (model=tiny_random): a mechanics check, not a result."""
    return run.data.params.get("model.source") == "random"


def find_runs(client: Any, experiment_id: str, sweep: str | None, everything: bool = False,
              include_sft: bool = False) -> tuple[list[Any], Any | None]:
    """(the training runs to compare, oldest first; the sweep's parent run or None). Without a sweep,
    parent runs are left out, and unless `everything` so are analysis/evaluation runs and runs of a
    random-init model; SFT warm-ups only with `include_sft`."""
    from longwriter.tracking.sweep_callback import ROLE_TAG, STUDY_TAG

    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"], max_results=5000)
    parent = None
    if sweep:
        parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent" and r.data.tags.get(STUDY_TAG) == sweep]
        if not parents:
            studies = sorted({r.data.tags.get(STUDY_TAG) for r in runs if r.data.tags.get(ROLE_TAG) == "parent"})
            raise LongwriterError(f"--sweep {sweep}: no sweep or seed group of that name in this store; here: "
                                  f"{', '.join(studies) or '(none)'}")
        parent = parents[-1]
        runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    else:
        from longwriter.tracking.seed_groups import GROUP_TAG

        # a seed that failed before logging params goes with its group's other seeds
        random_groups = {r.data.tags.get(GROUP_TAG) for r in runs if is_random_model_run(r)} - {None}
        runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "parent"
                and (include_sft or r.data.tags.get(KIND_TAG) != SFT_KIND)
                and (everything or (is_training_run(r, (SFT_KIND,) if include_sft else ()) and not is_random_model_run(r)
                                    and r.data.tags.get(GROUP_TAG) not in random_groups))]
    return runs, parent


def varying_params(runs: Sequence[Any], limit: int = 8, seed: bool = True) -> list[str]:
    """Params whose value differs between the runs (a sweep's searched keys, a changed recipe): the
    seed first (when `seed` and it differs), then the others alphabetically, at most `limit`. Runs
    without params (failed before logging them) are left out."""
    runs = [r for r in runs if r.data.params]
    keys = sorted({k for r in runs for k in r.data.params if not is_run_identity(k)},
                  key=lambda k: (k not in SEED_KEYS, k))
    varying = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1 and (seed or k not in SEED_KEYS)]
    return varying[:limit]


def _number(text: str | None) -> Any:
    """A param as a number where it is one (MLflow stores params as text)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return text


def runs_table(runs: Sequence[Any], groups: Sequence[GroupAggregate], params: Sequence[str]):
    """By run: name, short id, status, params, objective and the reward's quarters."""
    import pandas as pd

    members = {m.run_id: m for g in groups for m in g.members}
    rows = []
    for run in runs:
        member = members[run.info.run_id]
        rewards = member.curves.get(REWARD, [])
        row = {"run": run.info.run_name, "run_id": run.info.run_id, "status": run.info.status}
        row.update({key: _number(run.data.params.get(key)) for key in params})
        if "seed" in row:  # from the group's tag when the run failed before logging params
            row["seed"] = _number(member.seed)
        row.update({"objective": member.figures.get("objective"), "steps": len(rewards),
                    "reward first quarter": member.figures.get("reward/first_quarter"),
                    "reward last quarter": member.figures.get("reward/last_quarter"),
                    "reward last": rewards[-1][1] if rewards else None})
        rows.append(row)
    return pd.DataFrame(rows)


def groups_table(groups: Sequence[GroupAggregate], group_runs: Sequence[Sequence[Any]], params: Sequence[str]):
    """By group: label, n finished, n failed, the seeds, params, and per figure mean / ci95 / min / max."""
    import pandas as pd

    figures = [f for f in TABLE_FIGURES if any(f in g.figures for g in groups)]
    rows = []
    for group, runs in zip(groups, group_runs):
        source = next((r for r in runs if r.data.params), runs[0])
        row = {"group": group.label, "n": group.n, "failed": len(group.failed), "seeds": group.seeds(),
               "run_ids": " ".join(m.run_id for m in group.members)}
        row.update({key: _number(source.data.params.get(key)) for key in params})
        for name in figures:
            stats = group.figures.get(name)
            for stat in ("mean", "ci95", "min", "max"):
                row[f"{name} {stat}"] = getattr(stats, stat) if stats else None
        rows.append(row)
    return pd.DataFrame(rows), figures


def printable_groups(table, figures: Sequence[str]):
    """The group table as printed: each figure as `mean [min, max]`, numbers columns dropped."""
    shown = table.drop(columns=["run_ids", *[f"{f} {s}" for f in figures for s in ("mean", "ci95", "min", "max")]])
    for name in figures:
        cells = []
        for mean, low, high in zip(table[f"{name} mean"], table[f"{name} min"], table[f"{name} max"]):
            if mean is None or mean != mean:
                cells.append("-")
            else:
                low, high = f"{low:.3f}", f"{high:.3f}"
                cells.append(f"{mean:.3f}" + ("" if low == high else f" [{low}, {high}]"))
        shown[name] = cells
    return shown


def comparison_figures(groups: Sequence[GroupAggregate], swept: Sequence[str], params_of: Sequence[dict],
                       smoothing: float, band: str) -> dict[str, Any]:
    """Reward per step (one line per group, with its band), objective per group, and objective
    against each swept param."""
    from longwriter.tracking.plots import _pyplot
    from longwriter.tracking.seed_groups import curves_figure, distinct_colors

    plt = _pyplot()
    figures = {"reward_curves.png": curves_figure(groups, [REWARD], smoothing, band)}
    colors = distinct_colors(len(groups))  # by the group's index: the same colour as in reward_curves.png
    scored = [(g, p, c) for g, p, c in zip(groups, params_of, colors) if "objective" in g.figures]
    if not scored:
        return figures

    def spread(stats) -> tuple[float, float]:
        if stats.n < 2:
            return 0.0, 0.0
        low, high = (stats.low, stats.high) if band == "ci95" else (stats.min, stats.max)
        return stats.mean - low, high - stats.mean

    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(scored) + 2), 4))
    for i, (group, _, color) in enumerate(scored):
        stats = group.figures["objective"]
        ax.bar(i, stats.mean, color=color, alpha=0.6, yerr=[[spread(stats)[0]], [spread(stats)[1]]], capsize=4)
        ax.scatter([i] * stats.n, stats.values, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(scored)), [f"{g.label} (n={g.n})" for g, _, _ in scored], rotation=45, ha="right",
                  fontsize=7)
    what = "95% CI of the mean (t)" if band == "ci95" else "min..max"
    ax.set(title=f"objective per group: bar = mean, error bar = {what}, dots = seeds", ylabel="objective")
    figures["objective.png"] = fig
    for key in swept:
        values = [_number(p.get(key)) for _, p, _ in scored]
        if all(isinstance(v, float) for v in values):
            fig, ax = plt.subplots(figsize=(5, 4))
            for (group, _, color), value in zip(scored, values):
                stats = group.figures["objective"]
                low, high = spread(stats)
                ax.errorbar([value], [stats.mean], yerr=[[low], [high]], fmt="o", color=color, capsize=3)
            ax.set(title=f"objective vs {key}", xlabel=key, ylabel="objective")
            figures[f"objective_vs_{key}.png"] = fig
    return figures


def compare(store: str, experiment: str, sweep: str | None, extra_params: Sequence[str], out: Path,
            log: bool = True, by: str | None = None, smoothing: float = DEFAULT_SMOOTHING, band: str = "minmax",
            everything: bool = False, include_sft: bool = False) -> tuple[Any, list[Path], str | None]:
    """(the printed table, written files, the MLflow run the plots were logged to). `by`: "group" or
    "run" (default: "run" for a sweep, else "group")."""
    import mlflow

    from longwriter.tracking.plots import _pyplot, png_bytes
    from longwriter.tracking.seed_groups import load_groups

    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists():
        raise LongwriterError(f"no MLflow store at {store} (give --store, or run a training first)")
    client = mlflow.MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LongwriterError(f"no experiment {experiment!r} in {store}")
    runs, parent = find_runs(client, found.experiment_id, sweep, everything, include_sft)
    if not runs:
        raise LongwriterError(f"no runs to compare in experiment {experiment!r} of {store}"
                              + (f" under sweep {sweep}" if sweep else "")
                              + ("" if sweep or everything else " (tiny-model and evaluation runs need --all)"))
    by = by or ("run" if sweep else "group")
    swept = [k[len("sweep.space."):] for k in (parent.data.params if parent else {}) if k.startswith("sweep.space.")]
    loaded = load_groups(client, runs) if by == "group" else _single_groups(client, runs)
    groups = [g for g, _ in loaded]
    run_groups = [rs for _, rs in loaded]
    representatives = [next((r for r in rs if r.data.params), rs[0]) for rs in run_groups]
    varying = varying_params(runs if by == "run" else representatives, seed=by == "run")
    params = list(dict.fromkeys([*KEY_PARAMS, *extra_params, *swept, *varying]))
    params = [p for p in params if any(p in r.data.params for r in runs)]
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv"]
    if by == "run":
        table = runs_table(runs, groups, params)
        table.to_csv(written[0], index=False)
        shown = table.assign(run_id=table.run_id.str[:8])
    else:
        table, figure_names = groups_table(groups, run_groups, params)
        table.to_csv(written[0], index=False)
        shown = printable_groups(table, figure_names)
    figures = comparison_figures(groups, swept or [k for k in varying if k not in SEED_KEYS],
                                 [r.data.params for r in representatives], smoothing, band)
    for name, fig in figures.items():
        (out / name).write_bytes(png_bytes(fig))
        _pyplot().close(fig)
        written.append(out / name)
    logged_to = _log(client, found.experiment_id, parent, written) if log else None
    return shown, written, logged_to


def _single_groups(client: Any, runs: Sequence[Any]) -> list[tuple[GroupAggregate, list[Any]]]:
    """Each run its own group (by run), labelled with its name."""
    from longwriter.tracking.seed_groups import load_member
    from longwriter.tracking.seed_stats import aggregate

    return [(aggregate(r.info.run_name, [load_member(client, r)]), [r]) for r in runs]


def _log(client: Any, experiment_id: str, parent: Any | None, files: Sequence[Path]) -> str:
    return log_analysis_files(client, experiment_id, files, COMPARE_KIND, "compare",
                              parent.info.run_id if parent is not None else None)


def _smoothing(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m longwriter.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="MLflow tracking URI (default: the training runs' store)")
    parser.add_argument("--experiment", help="MLflow experiment (default: tracking.experiment_name)")
    parser.add_argument("--sweep", help="an Optuna study name or a seed group id: list its runs")
    parser.add_argument("--by", choices=("group", "run"),
                        help="one row per config with its seeds grouped, or per run (default: run with --sweep, "
                             "else group)")
    parser.add_argument("--smooth", type=_smoothing, default=DEFAULT_SMOOTHING,
                        help=f"EMA weight of the curves, as TensorBoard's slider (default {DEFAULT_SMOOTHING}; 0: raw)")
    parser.add_argument("--band", choices=BANDS, default="minmax",
                        help="band around a group's curve: min..max over its seeds (as W&B and MLflow's grouped "
                             "charts; default) or the 95%% CI of the mean (Student t: wide for 2-3 seeds)")
    parser.add_argument("--all", action="store_true",
                        help="also runs of a random-init model (model=tiny_random) and evaluation/analysis runs")
    parser.add_argument("--include-sft", action="store_true", help="list SFT warm-up runs (kind=sft) too")
    parser.add_argument("--params", default="", help="more params to show, comma-separated")
    parser.add_argument("--out", help="folder for runs.csv and the plots (default: <outputs>/compare/<name>)")
    parser.add_argument("--no-log", action="store_true", help="do not log the table and plots to MLflow")
    args = parser.parse_args(argv)
    import pandas as pd

    try:
        uri, experiment, output_root = default_tracking() if not (args.store and args.experiment) else (
            args.store, args.experiment, Path("outputs"))
        store, experiment = args.store or uri, args.experiment or experiment
        out = Path(args.out) if args.out else output_root / "compare" / (args.sweep or "runs")
        shown, written, logged_to = compare(store, experiment, args.sweep, [p for p in args.params.split(",") if p],
                                            out, log=not args.no_log, by=args.by, smoothing=args.smooth,
                                            band=args.band, everything=args.all, include_sft=args.include_sft)
    except LongwriterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.float_format", "{:.4g}".format):
        print(shown.to_string(index=False))
    print(f"\nwritten to {out}: {', '.join(p.name for p in written)}")
    if logged_to:
        print(f"logged to MLflow run {logged_to} (artifacts compare/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
