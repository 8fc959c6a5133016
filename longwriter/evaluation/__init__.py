"""Evaluation behind `python -m longwriter.evaluate` and training's `eval.at_start/at_end`.

  metrics     the formulas (S_l, S_q, checklist, win rates): pure functions
  scoring     one registered scorer per metric family (judge calls concurrent)
  report      MLflow metrics, params, per-sample table and plots
  runner      one evaluation end to end (`evaluate_model`, `run_evaluate`, `evaluate_in_training`)
Responses are generated through `longwriter.generation` (batched, cached), shared with data selection.
"""
