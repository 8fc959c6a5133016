"""Seed groups, the pure part (longwriter/tracking/seed_stats.py), against hand-computed values: which
runs are one config, mean / 95% CI (Student t) / min / max, TensorBoard's EMA, per-step bands, one
run's learning figures, and a group whose failed seed is listed and not averaged."""

from __future__ import annotations

import math

import pytest

from longwriter.tracking.seed_stats import (
    Member,
    aggregate,
    band_label,
    config_key,
    curve_band,
    describe,
    ema,
    group_by_config,
    learning_figures,
    summary_lines,
    t_quantile,
)


def test_config_key_drops_the_seed_and_what_names_one_run() -> None:
    a = {"seed": "0", "run_name": "x-s0", "paths.output_root": "/a", "tracking.tracking_uri": "sqlite:///a",
         "eval/final/model": "/a/x-s0/final_model", "engine.learning_rate": "3e-05", "model.seed": "0"}
    b = {**a, "seed": "1", "run_name": "x-s1", "paths.output_root": "/b", "eval/final/model": "/b/final_model"}
    assert config_key(a) == config_key(b) == (("engine.learning_rate", "3e-05"), ("model.seed", "0"))
    c = {**a, "engine.learning_rate": "1e-05"}
    d = {**a, "model.seed": "1"}  # another seed of something else is another config
    assert group_by_config({"a": a, "c": c, "b": b, "d": d}) == [["a", "b"], ["c"], ["d"]]


def test_t_quantiles_match_the_table() -> None:
    # two-sided 95%: df 1, 2, 4, 10 (any statistics table)
    for n, t in [(2, 12.706), (3, 4.303), (5, 2.776), (11, 2.228)]:
        assert t_quantile(n) == pytest.approx(t, abs=5e-4)


def test_describe_by_hand() -> None:
    stats = describe([1.0, 2.0, 3.0])
    # mean 2, sample std 1, CI half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    assert (stats.n, stats.mean, stats.std, stats.min, stats.max) == (3, 2.0, 1.0, 1.0, 3.0)
    assert stats.ci95 == pytest.approx(2.48414, abs=1e-5)
    assert (stats.low, stats.high) == pytest.approx((2 - 2.48414, 2 + 2.48414), abs=1e-5)
    assert stats.text() == "2.000 +- 2.484 [1.000, 3.000]"
    one = describe([0.5, math.nan, None])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.ci95) and one.text() == "0.500 (one seed)"
    assert describe([]) is None and describe([math.inf]) is None


def test_ema_is_tensorboards_debiased_smoothing() -> None:
    # w = 0.5: last = 0.5, 0.25, 0.625; debias 1 - 0.5^k = 0.5, 0.75, 0.875
    assert ema([1.0, 0.0, 1.0], 0.5) == pytest.approx([1.0, 1 / 3, 5 / 7])
    assert ema([1.0, 0.0, 1.0], 0.0) == [1.0, 0.0, 1.0]
    assert ema([0.7] * 5, 0.9) == pytest.approx([0.7] * 5)  # a constant is not pulled toward 0
    assert ema([1.0, math.nan, 0.0], 0.5)[1] != ema([1.0, math.nan, 0.0], 0.5)[1]  # NaN passes through
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ema([1.0], 1.0)


def test_curve_band_per_step() -> None:
    seeds = [[(1, 0.0), (2, 1.0)], [(1, 2.0), (2, 3.0), (3, 5.0)]]
    spread = curve_band(seeds, band="minmax")
    assert [(p.step, p.n, p.mean, p.low, p.high) for p in spread] == [
        (1, 2, 1.0, 0.0, 2.0), (2, 2, 2.0, 1.0, 3.0), (3, 1, 5.0, 5.0, 5.0)]
    ci = curve_band(seeds, band="ci95")
    # two values 1 apart from their mean: std sqrt(2), half-width t(0.975, 1) * sqrt(2) / sqrt(2) = 12.706
    assert ci[0].low == pytest.approx(1.0 - 12.7062, abs=1e-3) and ci[0].high == pytest.approx(1.0 + 12.7062, abs=1e-3)
    assert (ci[2].low, ci[2].high) == (5.0, 5.0)  # one seed at that step: no width
    smoothed = curve_band(seeds, weight=0.5, band="minmax")
    # each seed smoothed first: seed 0 -> 0, 2/3; seed 1 -> 2, 8/3, 4 (last = 1, 2, 3.5; / 0.5, 0.75, 0.875)
    assert [p.mean for p in smoothed] == pytest.approx([1.0, (2 / 3 + 8 / 3) / 2, 4.0])
    assert band_label("minmax", 0.6) == "mean over seeds, band min..max over seeds, EMA 0.6"
    assert band_label("ci95", 0) == "mean over seeds, band 95% CI of the mean (Student t), no smoothing"


def test_learning_figures_of_one_run() -> None:
    history = {
        "reward/total/mean": [(s, v) for s, v in enumerate([0.1, 0.2, 0.3, 0.5, 0.6, 0.6, 0.7, 0.9], start=1)],
        "length/in_range_rate": [(1, 0.0), (2, 1.0)],
        "eval/length_score/mean": [(0, 40.0), (8, 70.0)],
        "eval/length_following/spearman": [(0, 0.1), (8, 0.6)],
        "eval/timing/total_s": [(0, 3.0), (8, 4.0)],        # bookkeeping, not a score
        "eval/length_score/n": [(0, 28.0), (8, 28.0)],
        "eval/quality_score/mean": [(8, 55.0)],              # evaluated at the end only
        "objective": [(8, 0.8)],
        "reward/length/mean": [(1, 0.5), (2, 0.7)],
        "curriculum/level/mean_all": [(1, 0.0), (2, 0.25), (3, 0.5), (4, 1.0)],
    }
    figures = learning_figures(history, following=(0.2, 0.5))
    # 8 steps: quarters of 2 steps each
    assert figures["reward/first_quarter"] == pytest.approx(0.15)
    assert figures["reward/last_quarter"] == pytest.approx(0.8)
    assert figures["reward/change"] == pytest.approx(0.65)
    assert figures["in_range_rate/change"] == pytest.approx(1.0)
    assert figures["following_rho/change"] == pytest.approx(0.3)
    assert (figures["heldout/length_score/before"], figures["heldout/length_score/after"],
            figures["heldout/length_score/change"]) == (40.0, 70.0, 30.0)
    assert figures["heldout/length_following/spearman/change"] == pytest.approx(0.5)
    assert figures["heldout/quality_score/after"] == 55.0 and "heldout/quality_score/before" not in figures
    assert figures["objective"] == 0.8
    assert figures["reward_length/change"] == pytest.approx(0.2)
    assert (figures["curriculum_level/first_quarter"], figures["curriculum_level/change"]) == (0.0, 1.0)
    assert not [k for k in figures if "timing" in k or k.startswith("heldout/length_score/n")]


def _member(seed: str, status: str, change: float, curve: list[float], error: str | None = None) -> Member:
    return Member(f"run{seed}", f"g-{seed}", seed, status, {"reward/change": change, "objective": curve[-1]},
                  {"reward/total/mean": list(enumerate(curve, start=1))}, error)


def test_a_failed_seed_is_listed_and_not_averaged() -> None:
    members = [_member("2", "FAILED", 9.0, [9.0, 9.0], "RuntimeError: out of memory"),
               _member("0", "FINISHED", 0.1, [0.2, 0.4]), _member("1", "FINISHED", 0.3, [0.4, 0.8])]
    group = aggregate("g", members, expected_seeds=["0", "1", "2", "3"])
    assert group.n == 2 and [m.seed for m in group.failed] == ["2"] and group.missing == ["3"]
    change = group.figures["reward/change"]
    assert (change.n, change.mean, change.min, change.max) == (2, pytest.approx(0.2), 0.1, 0.3)
    assert group.seeds() == "0,1,2(failed)"
    band = group.band("reward/total/mean")
    assert [p.step for p in band] == [1, 2] and [p.mean for p in band] == pytest.approx([0.3, 0.6])
    lines = summary_lines(group)
    assert lines[0] == "== seed group g: 2 seed(s) finished, 1 failed, 1 never started =="
    row = next(line for line in lines if line.strip().startswith("reward/change"))
    assert "0.200 +- " in row and "[0.100, 0.300]" in row and row.endswith("0.100, 0.300")
    assert "  seed 2: FAILED (left out of the means): RuntimeError: out of memory" in lines
    assert "  seed 3: never started (left out)" in lines


def test_a_group_with_no_finished_seed_says_so() -> None:
    group = aggregate("g", [_member("0", "FAILED", 1.0, [1.0], "boom"), _member("1", "RUNNING", 1.0, [1.0])])
    assert group.n == 0 and group.figures == {} and group.seeds() == "0(failed),1(running)"
    lines = summary_lines(group)
    assert lines[0] == "== seed group g: 0 seed(s) finished, 1 failed, 1 not finished =="
    assert "  no seed finished: nothing to average" in lines


def test_the_printed_figures_come_in_a_stable_order() -> None:
    from longwriter.tracking.seed_stats import summary_figures

    names = {"objective", "heldout/length_score/change", "heldout/length_score/before", "reward/change",
             "heldout/timing/total_s/after", "heldout/length_following/spearman/after", "words/first_quarter",
             "reward_length/change", "curriculum_level/change"}
    assert summary_figures(names) == ["reward/change", "curriculum_level/change", "heldout/length_score/before",
                                      "heldout/length_score/change", "heldout/length_following/spearman/after",
                                      "objective"]
    both = summary_figures({"reward_length/change", "reward_soft_overlong/change"})  # several components: shown
    assert both == ["reward_length/change", "reward_soft_overlong/change"]
