"""Arena: rank several models, checkpoints or training runs against each other by pairwise judge
battles (Bradley-Terry ratings on the Elo scale, bootstrap CIs), as LongWriter-Zero's Arena-Write.

  python -m longwriter.arena                              (conf/arena.yaml: contestants, prompts, judge)
  ratings.py: the fit; battles.py: swap-debiased battles; runner.py: generation, judging, MLflow.
"""
