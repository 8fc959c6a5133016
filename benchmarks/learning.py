"""Learning benchmark: does a training run teach the policy to FOLLOW the requested length?

One invocation = one ordinary training run per seed that evaluates the held-out set
(data=length_heldout: counts, topics and forms not in training, some counts a little outside the
training span) greedily before its first step and after its last one. With --seeds the runs are one
seed group (`python -m longwriter.train -m sweep=seeds experiment=length_learning seed=0,1,2
run_name=learning`, docs/seeds.md): one MLflow parent run holds the mean, 95% CI and min..max over the
seeds of every figure, and a seed that fails is reported and left out. This script reads both
evaluations back from each run's MLflow record and logs into the same run, before and after:
  learning/<figure>/{before,after,delta}   length_score (S_l), spearman (required vs produced words),
                                           log_slope (log produced on log required), truncated_rate
  learning/blind_ceiling                   the best S_l any constant-length policy reaches on these prompts
  learning/wall_s, learning/steps
  learning/before_after.png   required vs produced words before/after (with y = x), and the reward curve
  learning/result.json        the same figures as text
then prints one row per seed and the group's figures over the seeds (mean +- 95% CI [min, max], the
same lines the end of a seed group prints), and logs that table into the group's parent run
(`learning/seeds.txt`). Extra arguments are Hydra overrides for every run, e.g.
  .venv/bin/python benchmarks/learning.py --seeds 0,1,2
  .venv/bin/python benchmarks/learning.py engine.max_steps=30 engine.learning_rate=3e-5
Exit status 0 whatever the result (it measures; the note says what was seen); a seed that fails is
reported in the group's lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from longwriter.evaluation.following import following_figures  # noqa: E402
from longwriter.tracking.run_summary import quarter_means  # noqa: E402

PRESET = "experiment=length_learning"
BEFORE, AFTER = "eval/initial", "eval/final"


def _rows(client, run_id: str, label: str) -> list[dict]:
    """The per-sample table an evaluation logged (`<label>/samples.json`, MLflow table format)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{label}/samples.json")
    table = json.loads(Path(path).read_text())
    return [dict(zip(table["columns"], row)) for row in table["data"]]


FIGURES = ("length_score", "spearman", "log_slope", "truncated_rate")


def _figures(rows: list[dict]) -> dict[str, float]:
    scored = [r for r in rows if r.get("length_score") is not None]
    return following_figures([r["required_length"] for r in scored], [r["words"] for r in scored],
                             [bool(r["truncated"]) for r in scored])


def _figure(before: list[dict], after: list[dict], rewards: list[float], s_before: float, s_after: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for rows, color, name, score in ((before, "tab:grey", "before", s_before), (after, "tab:blue", "after", s_after)):
        left.scatter([r["required_length"] for r in rows], [r["words"] for r in rows], s=18, alpha=0.75,
                     color=color, label=f"{name} (S_l {score:.1f})")
    top = max([r["words"] for r in before + after] + [r["required_length"] for r in before]) * 1.05
    left.plot([0, top], [0, top], color="black", lw=1, ls="--", label="produced = required")
    left.set(xlabel="required words", ylabel="produced words", xlim=(0, None), ylim=(0, top),
             title="held-out prompts: required vs produced length")
    left.legend(loc="upper left")
    right.plot(range(1, len(rewards) + 1), rewards, marker="o", ms=3, color="tab:green")
    right.set(xlabel="step", ylabel="reward/total/mean", title="training reward per step")
    fig.tight_layout()
    return fig


def analyse(run_id: str, wall_s: float) -> dict:
    """Read the run's two evaluations and reward curve; log the comparison into the run."""
    import matplotlib.pyplot as plt
    import mlflow

    client = mlflow.MlflowClient()
    before, after = _rows(client, run_id, BEFORE), _rows(client, run_id, AFTER)
    rewards = [m.value for m in sorted(client.get_metric_history(run_id, "reward/total/mean"), key=lambda m: m.step)]
    fig_before, fig_after = _figures(before), _figures(after)
    first, last = quarter_means(rewards)
    result = {"run_id": run_id, "steps": len(rewards), "wall_s": round(wall_s, 1), "n_heldout": len(after),
              "blind_ceiling": round(fig_after["blind_ceiling"], 2),
              "reward_first_quarter": round(first, 4), "reward_last_quarter": round(last, 4)}
    metrics = {"learning/blind_ceiling": fig_after["blind_ceiling"], "learning/wall_s": wall_s,
               "learning/steps": len(rewards)}
    for name in FIGURES:
        result[f"{name}_before"], result[f"{name}_after"] = round(fig_before[name], 3), round(fig_after[name], 3)
        metrics.update({f"learning/{name}/before": fig_before[name], f"learning/{name}/after": fig_after[name],
                        f"learning/{name}/delta": fig_after[name] - fig_before[name]})
    result["median_words_before"], result["median_words_after"] = fig_before["median_words"], fig_after["median_words"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(metrics)
        fig = _figure(before, after, rewards, fig_before["length_score"], fig_after["length_score"])
        mlflow.log_figure(fig, "learning/before_after.png")
        plt.close(fig)
        mlflow.log_text(json.dumps(result, indent=2), "learning/result.json")
    return result


def _row(label: str, r: dict) -> str:
    return (f"{label:>6} | {r['length_score_before']:5.1f} -> {r['length_score_after']:5.1f} | "
            f"{r['spearman_before']:5.2f} -> {r['spearman_after']:5.2f} | {r['log_slope_before']:5.2f} -> "
            f"{r['log_slope_after']:5.2f} | {r['truncated_rate_before']:4.2f} -> {r['truncated_rate_after']:4.2f} | "
            f"{r['blind_ceiling']:5.1f} | {r['reward_first_quarter']:.3f} -> {r['reward_last_quarter']:.3f} | "
            f"{r['wall_s']:6.0f}")


def table_lines(results: dict) -> list[str]:
    """One row per seed, every figure before -> after."""
    lines = ["  seed |   S_l (held-out)  | Spearman       | log-log slope  | truncated    | blind | "
             "train reward     | wall s"]
    lines += [_row(str(seed), r) for seed, r in results.items()]
    return lines


def _train(overrides: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "longwriter.train", *overrides], cwd=ROOT).returncode


def _config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def run_single(overrides: list[str]) -> dict:
    """One training run with the config's seed (with its two evaluations) and its analysis."""
    import mlflow

    run_name = f"learning-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [PRESET, f"run_name={run_name}", *overrides]
    started = time.perf_counter()
    if _train(overrides):
        raise SystemExit("the training run failed (see its output above)")
    wall_s = time.perf_counter() - started
    cfg = _config(overrides)
    run_dir = Path(str(cfg.paths.output_root)) / "train" / run_name
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    mlflow.set_tracking_uri(str(cfg.tracking.tracking_uri))
    return analyse(run_id, wall_s)


def run_group(overrides: list[str], seeds: list[int]) -> None:
    """The seeds as one seed group (one multirun, one parent run), then each seed's analysis and the
    group's figures over the seeds."""
    import mlflow

    from longwriter.tracking.seed_groups import load_member
    from longwriter.tracking.seed_stats import aggregate, summary_lines
    from longwriter.tracking.sweep_callback import PARENT_FILE

    cfg = _config([PRESET, *overrides])
    sweep_dir = Path(str(cfg.paths.output_root)) / "seeds" / time.strftime("%Y%m%d-%H%M%S")
    code = _train(["-m", "sweep=seeds", PRESET, "run_name=learning", f"seed={','.join(map(str, seeds))}",
                   f"hydra.sweep.dir={sweep_dir}", *overrides])
    if not (sweep_dir / PARENT_FILE).exists():
        raise SystemExit(f"the seed group did not start (exit code {code}; see its output above)")
    parent = json.loads((sweep_dir / PARENT_FILE).read_text())
    mlflow.set_tracking_uri(str(cfg.tracking.tracking_uri))
    client = mlflow.MlflowClient()
    runs = client.search_runs([parent["experiment_id"]], f"tags.`mlflow.parentRunId` = '{parent['run_id']}'",
                              order_by=["attributes.start_time ASC"])
    results = {}
    for run in runs:
        if run.info.status == "FINISHED":  # wall: the run's own duration (training and both evaluations)
            wall_s = (run.info.end_time - run.info.start_time) / 1000
            results[run.data.params["seed"]] = result = analyse(run.info.run_id, wall_s)
            print(json.dumps(result), flush=True)
    group = aggregate(parent["group"], [load_member(client, client.get_run(r.info.run_id)) for r in runs],
                      parent["seeds"])
    lines = [*table_lines(results), "", *summary_lines(group),
             f"  MLflow parent run {parent['run_id']}: the same figures as seeds/<figure>/<stat>"]
    print("\n".join(lines), flush=True)
    client.log_text(parent["run_id"], "\n".join(lines) + "\n", "learning/seeds.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=None,
                        help="comma-separated seeds, one training run each in one seed group, e.g. 0,1,2 "
                             "(default: one run with the config's seed)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = parser.parse_args()
    if args.seeds:
        run_group(args.overrides, args.seeds)
    else:
        result = run_single(args.overrides)
        print(json.dumps(result), flush=True)
        print("\n".join(table_lines({"-": result})))


if __name__ == "__main__":
    main()
