"""`engine=verl`: the project's rewards, advantages and curriculum inside verl 0.9.1 on Ray.

Thin adapters over verl's extension points (nothing of verl is copied):
  config_builder   verl's packaged ppo_trainer config, composed with Hydra and overridden from ours
  validate         verl's own validate_config plus the checks verl cannot know (our registrations)
  reward           reward manager "longwriter" (verl's reward-loop registry): Recipe.score, async
  advantage        advantage estimator "longwriter" (verl's registry) -> combine_advantages
  trainer          v1 trainer mode "longwriter_sync": delivers the reward components to it
  curriculum_actor named Ray actor holding the reference levels, saved with verl checkpoints
  plugin           the `verl.plugins` entry point: registers the above in every Ray process
  launcher         run(cfg, output_dir): dry run (config + parquet + validation) or run_ppo

Importing this package does not import verl (the extra is optional).
"""
