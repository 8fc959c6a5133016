"""longwriter: RL harness for long-form writing (Writing-RL and LongWriter-Zero recipes)."""
