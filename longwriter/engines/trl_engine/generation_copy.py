"""A bf16 copy of the policy that samples the rollouts when `engine.precision` resolves to bf16.

Under bf16 autocast the fp32 weights would be cast to bf16 again on every decoded token (the
whole model, 128 times per step); a bf16 copy is cast once per step instead (one pass over the
weights, tens of milliseconds for 135M parameters) and halves the bytes read per token. The policy
keeps its fp32 master weights: the optimiser and the log-probabilities of the update never see
this copy. Sampling from bf16 weights while the loss uses autocast makes the sampler very slightly
off-policy, as vLLM sampling is; TRL's ratio stays exactly 1 at `num_iterations=1`.
"""

from __future__ import annotations

import torch


class GenerationCopy:
    """Holds `model`'s weights in `dtype` for `generate`; `sync()` refreshes them from the policy."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        from transformers import AutoModelForCausalLM

        self.source = model
        self.model = AutoModelForCausalLM.from_config(model.config, dtype=dtype)
        self.model.generation_config = model.generation_config
        self.model.requires_grad_(False)
        self.model.eval()
        self._pairs = self._matching_tensors()
        self.sync()

    def _matching_tensors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        source = dict(self.source.named_parameters())
        source.update(dict(self.source.named_buffers()))
        pairs = []
        for name, target in [*self.model.named_parameters(), *self.model.named_buffers()]:
            if name not in source:
                raise ValueError(f"generation copy: the policy has no tensor named {name!r}")
            pairs.append((target, source[name]))
        return pairs

    @torch.no_grad()
    def sync(self) -> None:
        """Copy (and cast) the policy's current weights into the copy."""
        for target, source in self._pairs:
            target.copy_(source)
