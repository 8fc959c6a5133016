"""Learning benchmark: does a training run improve LongBench-Write's S_l on held-out prompts?

One invocation = one ordinary training run (`python -m longwriter.train experiment=length_learning`)
that evaluates the held-out set (data=length_heldout, disjoint from the training prompts) before
its first step and after its last one (eval.at_start / eval.at_end, greedy, S_l only), then this
script reads both evaluations and the reward curve back from the run's MLflow record and logs
into the same run:
  learning/length_score/{before,after,delta}, learning/wall_s, learning/steps
  learning/before_after.png   required vs produced words, before and after, plus the reward curve
  learning/result.json        the same figures as text
and prints them. Extra arguments are Hydra overrides for the training run, e.g.
  .venv/bin/python benchmarks/learning.py engine.max_steps=30 engine.learning_rate=2e-4
Exit status 0 whatever the result (it measures; the note says what was seen).
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

from longwriter.tracking.run_summary import quarter_means  # noqa: E402

PRESET = "experiment=length_learning"
BEFORE, AFTER = "eval/initial", "eval/final"


def _rows(client, run_id: str, label: str) -> list[dict]:
    """The per-sample table an evaluation logged (`<label>/samples.json`, MLflow table format)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{label}/samples.json")
    table = json.loads(Path(path).read_text())
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def _mean_score(rows: list[dict]) -> float:
    scores = [r["length_score"] for r in rows if r.get("length_score") is not None]
    return sum(scores) / len(scores) if scores else float("nan")


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
    s_before, s_after = _mean_score(before), _mean_score(after)
    first, last = quarter_means(rewards)
    result = {
        "run_id": run_id, "steps": len(rewards), "wall_s": round(wall_s, 1), "n_heldout": len(after),
        "length_score_before": round(s_before, 2), "length_score_after": round(s_after, 2),
        "length_score_delta": round(s_after - s_before, 2),
        "words_mean_before": sum(r["words"] for r in before) / len(before),
        "words_mean_after": sum(r["words"] for r in after) / len(after),
        "truncated_before": sum(bool(r["truncated"]) for r in before) / len(before),
        "truncated_after": sum(bool(r["truncated"]) for r in after) / len(after),
        "reward_first_quarter": round(first, 4), "reward_last_quarter": round(last, 4),
    }
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({"learning/length_score/before": s_before, "learning/length_score/after": s_after,
                            "learning/length_score/delta": s_after - s_before, "learning/wall_s": wall_s,
                            "learning/steps": len(rewards)})
        fig = _figure(before, after, rewards, s_before, s_after)
        mlflow.log_figure(fig, "learning/before_after.png")
        plt.close(fig)
        mlflow.log_text(json.dumps(result, indent=2), "learning/result.json")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    args = parser.parse_args()
    run_name = f"learning-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [PRESET, f"run_name={run_name}", *args.overrides]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "longwriter.train", *overrides], cwd=ROOT, check=True)
    wall_s = time.perf_counter() - started

    from hydra import compose, initialize_config_dir
    import mlflow

    from longwriter.paths import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    run_dir = Path(str(cfg.paths.output_root)) / "train" / run_name
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    mlflow.set_tracking_uri(str(cfg.tracking.tracking_uri))
    result = analyse(run_id, wall_s)
    print(f"learning benchmark ({result['steps']} steps, {result['wall_s']:.0f} s wall incl. both evaluations, "
          f"{result['n_heldout']} held-out prompts): S_l {result['length_score_before']:.1f} -> "
          f"{result['length_score_after']:.1f} ({result['length_score_delta']:+.1f}); mean words "
          f"{result['words_mean_before']:.0f} -> {result['words_mean_after']:.0f}; truncated "
          f"{result['truncated_before']:.2f} -> {result['truncated_after']:.2f}; run {run_id}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
