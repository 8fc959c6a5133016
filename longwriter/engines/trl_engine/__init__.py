"""The embedded default engine: TRL's GRPOTrainer with the project's rewards and advantages."""
