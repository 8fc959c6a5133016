"""Length-range selection (LongWriter-Zero, `data_selection=length_range`).

A judge LLM predicts each query's word range as JSON `{"range": [lo, hi]}` under the rules of
DESIGN 5 (multiples of 100, hi <= 12000, hi - lo <= 3000, explicit counts +-10%, [0, 0] when no
response can fit). The prompt and the strict parser live with the judge (`LengthRangeTask`); this
module applies the predictions: a sample gets its predicted range, and a sample whose prediction
is infeasible, unparsable, breaks a rule or failed is dropped with that reason and counted. The
judge cache makes a re-run free.
"""

from __future__ import annotations

import dataclasses
import logging

from omegaconf import DictConfig

from longwriter.data.schema import Sample
from longwriter.judges.lifecycle import run_with_judge
from longwriter.selection.judging import build_backend, gather_per_sample
from longwriter.selection.report import SelectionReport, drop_counts, reporting_strategy, stats
from longwriter.tracking.judge_usage import usage_metrics

logger = logging.getLogger(__name__)


@reporting_strategy("length_range")
def select_by_length_range(samples: list[Sample], cfg: DictConfig) -> SelectionReport:
    """Predict every query's word range with `judge=`; keep the samples with a usable range.

    data_selection.keep_existing: true -> a sample that already has a range (e.g. parsed from an
    explicit requirement by its loader) keeps it and costs no judge call.
    """
    from longwriter.judges import LengthRangeTask

    keep_existing = bool(cfg.data_selection.get("keep_existing", False))
    todo = [s for s in samples if not (keep_existing and s.length_range is not None)]
    backend = build_backend(cfg)
    task = LengthRangeTask(backend)

    async def work():
        return await gather_per_sample([task.predict(s.prompt) for s in todo], desc="length ranges")

    predictions = dict(zip((s.id for s in todo), run_with_judge(backend, work))) if todo else {}
    kept, rows = [], []
    for sample in samples:
        prediction = predictions.get(sample.id)
        if prediction is None:  # kept its existing range
            rows.append({"id": sample.id, "kept": True, "reason": None, "length_range": list(sample.length_range),
                         "length_range_source": "existing"})
            kept.append(sample)
            continue
        row = {"id": sample.id, "kept": prediction.feasible, "reason": prediction.reason,
               "length_range": list(prediction.range) if prediction.range else None,
               "length_range_source": "judge", "judge_raw": prediction.raw[:500], "judge_error": prediction.error}
        rows.append(row)
        if prediction.feasible:
            meta = {**sample.meta, "length_range_source": f"judge:{backend.identity}"}
            kept.append(dataclasses.replace(sample, length_range=prediction.range, meta=meta))
        else:
            logger.info("length_range: dropped %s (%s%s)", sample.id, prediction.reason,
                        f": {prediction.error}" if prediction.error else "")
    ranges = [r["length_range"] for r in rows if r["kept"] and r["length_range"]]
    metrics = {"length_range/predicted": float(len(todo)), "length_range/kept_existing": float(len(samples) - len(todo)),
               **stats("length_range/lower", [lo for lo, _ in ranges]),
               **stats("length_range/upper", [hi for _, hi in ranges]),
               **usage_metrics(backend)}
    return SelectionReport(kept, drop_counts(rows), rows, metrics)
