"""Margin-aware data selection (Writing-RL, Lei et al. 2025, sec. 3.1; not in its public code).

For every sample with references: the current policy (`model=`, or a trained folder) writes one
response; a pointwise criteria-aware judge scores that response and each reference (1-10);

    margin = max(reference scores) - policy score

A large positive margin means the references still show the policy something to learn. Kept:
the samples with margin > `threshold` (null: any known margin), then at most the `top_k` largest
(null: no cap), in input order. The same scores order each sample's references weakest ->
strongest (`order_references`) and can set its starting curriculum level to the first reference
that beats the policy (`set_start_level`).

Unknown scores are never guessed: a reference the judge could not score is left out of the
order, and a sample whose policy score or every reference score is unknown is dropped and
counted under its reason.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

from omegaconf import DictConfig

from longwriter.data.schema import Sample
from longwriter.generation import GenerationOptions, generate_answers
from longwriter.judges.lifecycle import run_with_judge
from longwriter.selection.judging import build_backend, gather_per_sample, order_by_score, score_texts
from longwriter.selection.report import SelectionReport, drop_counts, reporting_strategy, stats
from longwriter.tracking.judge_usage import usage_metrics

logger = logging.getLogger(__name__)


def margin(policy_score: float | None, reference_scores: Sequence[float | None]) -> float | None:
    """best known reference score - policy score; None when either side is unknown."""
    known = [s for s in reference_scores if s is not None]
    if policy_score is None or not known:
        return None
    return max(known) - policy_score


def first_level_beating(policy_score: float, reference_scores: Sequence[float | None]) -> int:
    """Index of the first reference scored above the policy; the last index when none is.

    With references ordered weakest -> strongest this is the weakest reference the policy has
    not yet caught up with: where its curriculum should start.
    """
    for level, score in enumerate(reference_scores):
        if score is not None and score > policy_score:
            return level
    return max(len(reference_scores) - 1, 0)


def keep_largest(margins: Sequence[float | None], threshold: float | None, top_k: int | None) -> list[str | None]:
    """Per sample: None (kept) or the drop reason, from margins alone (None = already dropped)."""
    reasons: list[str | None] = ["unscored" if m is None else None for m in margins]
    candidates = []
    for i, m in enumerate(margins):
        if m is None:
            continue
        if threshold is not None and not m > threshold:
            reasons[i] = "below_threshold"
        else:
            candidates.append(i)
    if top_k is not None:
        ranked = sorted(candidates, key=lambda i: -margins[i])  # stable: ties keep input order
        for i in ranked[max(int(top_k), 0):]:
            reasons[i] = "beyond_top_k"
    return reasons


def _policy_path(cfg: DictConfig) -> str:
    checkpoint = cfg.data_selection.get("checkpoint")
    if checkpoint:
        from longwriter.evaluation.runner import resolve_checkpoint

        return resolve_checkpoint(str(checkpoint))
    from longwriter.models import resolve_model_path

    return resolve_model_path(cfg.model, cfg.paths.cache_dir)


def _score_all(backend: Any, samples: list[Sample], responses: list[str]) -> list[list[float | None]]:
    """[policy score, reference scores...] per sample, all judge calls concurrent in one loop."""
    from longwriter.judges import PointwiseTask

    task = PointwiseTask(backend)

    async def work():
        calls = [score_texts(task, s, [r, *s.references]) for s, r in zip(samples, responses)]
        return await gather_per_sample(calls, desc="judging (margin)")

    return run_with_judge(backend, work)


def _apply_scores(sample: Sample, response: str, scores: list[float | None], order: bool, set_level: bool
                  ) -> tuple[dict[str, Any], Sample, int]:
    """The sample's table row (reason None = still a candidate), its updated form, unknown references left out."""
    policy_score, *ref_scores = scores
    refs, ordered, labels, n_unknown = list(sample.references), list(ref_scores), None, 0
    if order:
        refs, ordered, labels, n_unknown = order_by_score(sample.references, ref_scores,
                                                          [f"reference:{i}" for i in range(len(refs))])
    m = margin(policy_score, ordered)
    reason = "unknown_policy_score" if policy_score is None else "no_scored_reference" if m is None else None
    level = first_level_beating(policy_score, ordered) if (set_level and m is not None) else sample.start_level
    row = {"id": sample.id, "kept": False, "reason": reason, "n_references": len(sample.references),
           "policy_score": policy_score, "reference_scores": list(ref_scores), "margin": m, "start_level": level,
           "policy_words": len(response.split()), "policy_preview": response[:300]}
    meta = {**sample.meta, "policy_score": policy_score, "reference_scores": ordered, "margin": m}
    if labels is not None:
        meta["reference_order"] = labels  # where each reference stood before ordering
    return row, dataclasses.replace(sample, references=refs, start_level=level, meta=meta), n_unknown


@reporting_strategy("margin_aware")
def select_by_margin(samples: list[Sample], cfg: DictConfig) -> SelectionReport:
    """Generate, judge, compute margins, keep the largest (see the module docstring)."""
    sel = cfg.data_selection
    threshold = None if sel.get("threshold") is None else float(sel.threshold)
    top_k = None if sel.get("top_k") is None else int(sel.top_k)

    judged = [s for s in samples if s.references]
    responses: list[str] = []
    gen_stats: dict[str, float] = {}
    all_scores: list[list[float | None]] = []
    backend = None
    if judged:
        options = GenerationOptions.from_config(sel.generation, "data_selection.generation")
        backend = build_backend(cfg)  # an API judge is checked before the policy generates
        responses, gen_stats = generate_answers(judged, _policy_path(cfg), options, cache_path=sel.get("generation_cache"),
                                        dtype=str(cfg.model.get("dtype", "float32")))
        all_scores = _score_all(backend, judged, responses)
    by_id = {s.id: (r, sc) for s, r, sc in zip(judged, responses, all_scores)}

    rows: list[dict[str, Any]] = []
    updated: list[Sample | None] = []
    unknown_refs = 0
    for sample in samples:
        if sample.id not in by_id:
            rows.append({"id": sample.id, "kept": False, "reason": "no_references", "n_references": 0})
            updated.append(None)
            continue
        row, new, n_unknown = _apply_scores(sample, *by_id[sample.id], bool(sel.get("order_references", True)),
                                            bool(sel.get("set_start_level", True)))
        rows.append(row)
        updated.append(new)
        unknown_refs += n_unknown

    margins = [r.get("margin") if r["reason"] is None else None for r in rows]
    for row, reason in zip(rows, keep_largest(margins, threshold, top_k)):
        if row["reason"] is None:
            row["reason"] = reason
        row["kept"] = row["reason"] is None
    kept = [s for s, row in zip(updated, rows) if row["kept"] and s is not None]

    metrics = {**stats("margin", [r.get("margin") for r in rows]),
               **stats("margin_kept", [r.get("margin") for r in rows if r["kept"]]),
               **stats("policy_score", [r.get("policy_score") for r in rows]),
               **stats("start_level", [s.start_level for s in kept]),
               "references/unknown_score_dropped": float(unknown_refs),
               "generation/generated": gen_stats.get("generated", 0.0),
               "generation/cache_hits": gen_stats.get("cache_hits", 0.0),
               "timing/generation_s": gen_stats.get("seconds", 0.0)}
    all_ref_scores = [x for r in rows for x in r.get("reference_scores", [])]
    metrics.update(stats("reference_score", all_ref_scores))
    if backend is not None:
        metrics.update(usage_metrics(backend))
    return SelectionReport(kept, drop_counts(rows), rows, metrics)
