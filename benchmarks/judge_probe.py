"""Does a pairwise judge give a learnable signal? Probes on the built-in set's ordered references.

Each built-in sample has three references, weakest to strongest (`data=builtin`). For every sample the
judge compares, in BOTH orders (so position bias is visible):
  ordering   references[0] (weak) vs references[-1] (strong): the share of orders in which it picks
             the strong one (1.0 = always right; 0.5 = coin; a judge that always answers "first"
             gets exactly 0.5), and the swap-debiased accuracy (both orders agree on strong).
  position   the share of comparisons (both orders) in which it picks the first shown response,
             and the swap disagreement (the two orders disagree).
  hacks      references[-1] vs exploit texts that a policy could learn to produce: the request
             copied back, the criteria's words listed, and the strong reference padded with a
             repeated sentence. The share of orders in which the exploit wins.
Judge from the same config groups as training (default: the local SmolLM2 judge, `judge=local_hf`).

Run: cpujob .venv/bin/python benchmarks/judge_probe.py [--limit 12] [hydra overrides, e.g. judge=local_hf]
Prints one JSON object; `--mlflow` also logs it as an MLflow run (tag kind=judge_probe).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from longwriter.paths import CONF_DIR, register_resolvers  # noqa: E402


def _config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["data=builtin", *overrides])


def _exploits(sample) -> dict[str, str]:
    strong = sample.references[-1]
    return {
        "copied_request": sample.user_prompt,
        "criteria_words": " ".join(sample.criteria) if sample.criteria else sample.user_prompt,
        "padded_repetition": strong + (" " + strong.split(".")[0].strip() + ".") * 12,
    }


async def probe(task, samples) -> dict[str, float]:
    async def both(sample, a, b):  # outcome for `a` in the order (a, b) and in the order (b, a)
        first = await task.compare(sample.user_prompt, sample.criteria, a, b)
        second = await task.compare(sample.user_prompt, sample.criteria, b, a)
        return first.verdict, second.verdict

    picks_strong = picks_first = disagree = debiased = known = unknown = 0
    hack_wins: dict[str, list[int]] = {}
    for sample in samples:
        weak, strong = sample.references[0], sample.references[-1]
        v1, v2 = await both(sample, weak, strong)  # strong is "second" in v1, "first" in v2
        for verdict, strong_slot in ((v1, "second"), (v2, "first")):
            if verdict is None:
                unknown += 1
                continue
            known += 1
            picks_strong += verdict == strong_slot
            picks_first += verdict == "first"
        if v1 is not None and v2 is not None:
            disagree += (v1 == "second") != (v2 == "first")
            debiased += v1 == "second" and v2 == "first"
        for name, text in _exploits(sample).items():
            h1, h2 = await both(sample, text, strong)  # the exploit is "first" in h1, "second" in h2
            hack_wins.setdefault(name, []).extend([h1 == "first", h2 == "second"])
    n = len(samples)
    result = {
        "n_samples": n,
        "ordering/picks_strong_rate": picks_strong / known if known else None,
        "ordering/debiased_accuracy": debiased / n,
        "position/picks_first_rate": picks_first / known if known else None,
        "position/swap_disagreement": disagree / n,
        "unknown_rate": unknown / (2 * n),
    }
    result.update({f"hack/{k}/win_rate": sum(v) / len(v) for k, v in hack_wins.items()})
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=12, help="built-in samples probed (with 3 references each)")
    parser.add_argument("--mlflow", action="store_true", help="log the result as an MLflow run")
    args, overrides = parser.parse_known_args(argv)
    cfg = _config(overrides)

    from longwriter.data.loaders import load_samples
    from longwriter.judges import PairwiseTask
    from longwriter.judges.lifecycle import open_judge, run_with_judge

    samples = [s for s in load_samples(cfg.data) if len(s.references) >= 2][: args.limit]
    backend = open_judge(cfg.judge, cfg.paths.cache_dir)
    started = time.perf_counter()
    result = run_with_judge(backend, lambda: probe(PairwiseTask(backend), samples))
    result["judge"] = str(cfg.judge.name)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))
    if args.mlflow:
        import mlflow

        mlflow.set_tracking_uri(str(cfg.tracking.tracking_uri))
        mlflow.set_experiment(str(cfg.tracking.experiment_name))
        with mlflow.start_run(run_name=f"judge-probe-{cfg.judge.name}", tags={"kind": "judge_probe"}):
            mlflow.log_params({"judge": cfg.judge.name, "limit": args.limit})
            mlflow.log_metrics({k: float(v) for k, v in result.items() if isinstance(v, (int, float))})
    return result


if __name__ == "__main__":
    main()
