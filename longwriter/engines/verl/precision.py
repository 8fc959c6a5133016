"""`engine.precision` for verl: the verl 0.9.1 keys that set the number format of training and rollouts.

- FSDP (`strategy=fsdp|fsdp2`): each engine block (`actor_rollout_ref.{actor,ref}.fsdp_config`,
  `critic.fsdp`) loads the weights in `model_dtype` (the master copy, fp32 here as in verl) and
  computes under `mixed_precision`: `param_dtype` for the forward/backward, `reduce_dtype` for the
  gradient all-reduce, `buffer_dtype` for buffers. Without the mapping verl uses bf16 / fp32 / fp32;
  verl's YAML leaves `mixed_precision` out (verl users add it with `+`), so it is merged outside
  struct mode. The blocks' `dtype` key is not read by the FSDP engine.
- Megatron: `{actor,ref}.megatron.dtype` (and `critic.megatron.dtype`), which verl allows only as
  bfloat16 or float16, so fp32 with megatron is refused here rather than by an assertion on a GPU.
- Rollouts (vLLM, SGLang): `actor_rollout_ref.rollout.dtype`, the dtype the inference engine loads.

`auto` is bf16: verl runs on GPU clusters, bf16 is verl's own default, and the driver that writes the
config may have no GPU to ask (TRL's `resolve_precision` asks the device it trains on).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from longwriter.engines.precision import checked_setting
from longwriter.errors import ConfigError

# resolved precision -> (name in FSDP's mixed_precision, torch dtype name for rollout and megatron)
VERL_DTYPES = {"bf16": ("bf16", "bfloat16"), "fp32": ("fp32", "float32")}


def verl_precision(setting: str | None) -> str:
    """`bf16` or `fp32` for `engine.precision` under verl (auto: bf16)."""
    setting = checked_setting(setting)
    return "bf16" if setting == "auto" else setting


def precision_keys(engine_cfg: DictConfig, use_critic: bool) -> dict[str, Any]:
    """The nested verl keys for `engine.precision` and `engine.strategy` (merged outside struct mode)."""
    precision = verl_precision(engine_cfg.get("precision"))
    fsdp_name, torch_name = VERL_DTYPES[precision]
    if str(engine_cfg.strategy) == "megatron":
        if precision != "bf16":
            raise ConfigError(f"engine.precision={engine_cfg.precision} with engine.strategy=megatron: verl's megatron "
                              f"engine trains in bfloat16 or float16 only; use engine.strategy=fsdp (or fsdp2) for fp32, "
                              f"or engine.precision=bf16")
        block_key, block = "megatron", {"dtype": torch_name}
    else:
        block_key, block = "fsdp_config", {"model_dtype": "fp32", "mixed_precision": {
            "param_dtype": fsdp_name, "reduce_dtype": "fp32", "buffer_dtype": "fp32"}}
    keys: dict[str, Any] = {"actor_rollout_ref": {"actor": {block_key: block}, "ref": {block_key: block},
                                                  "rollout": {"dtype": torch_name}}}
    if use_critic:  # verl names the critic's FSDP block `fsdp`, its megatron block `megatron`
        keys["critic"] = {"fsdp" if block_key == "fsdp_config" else "megatron": block}
    return keys
