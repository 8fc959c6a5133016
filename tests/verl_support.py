"""Shared pieces of the verl tests (tests/test_verl_*.py): skips, configs, a local Ray, rollouts.

Every verl test module starts with `require_verl()`, which skips the module with the reason when
the verl extra is not installed (the default CI venv has no verl).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from conftest import compose

# A hybrid recipe: every component kind the verl adapter must carry (judge, curriculum, plain scores).
HYBRID_RECIPE = {
    "name": "hybrid",
    "combine": "mean_advantage",
    "prompt_template": "think",
    "components": {
        "pairwise": {"weight": 2.0, "position": "disadvantage", "curriculum_rule": "any"},
        "length": {"weight": 1.0},
        "format": {"weight": 1.0},
    },
}


def require_verl() -> None:
    """Skip the calling test module unless verl 0.9.1's CPU-testable parts import here."""
    for module, why in (("verl", "the verl extra is not installed (pip install -e '.[verl]')"),
                        ("ray", "Ray (installed with the verl extra) is missing"),
                        ("transfer_queue", "TransferQueue (verl's v1 trainer, in the verl extra) is missing")):
        pytest.importorskip(module, reason=why)


def project_cfg(tmp_path: Path, overrides: list[str] | None = None, reward: dict | None = None) -> DictConfig:
    """The project config as `python -m longwriter.train engine=verl ...` sees it, outputs under tmp_path."""
    cfg = compose(["engine=verl", f"paths.output_root={tmp_path / 'outputs'}", *(overrides or [])])
    if reward is not None:
        OmegaConf.update(cfg, "reward", reward, merge=False)
    return cfg


def judge_reply(request: dict[str, Any]) -> str:
    """Scripted pairwise judge for the disadvantage position (the response is shown second, as B):
    B wins when the response contains WIN, no verdict marker when it contains GARBLE, else A wins."""
    content = request["messages"][-1]["content"]
    response = content.split("[Response B]", 1)[-1].split("[End of Response B]", 1)[0]
    if "GARBLE" in response:
        return "I cannot decide."
    return "Verdict: [[B]]" if "WIN" in response else "Verdict: [[A]]"


def think(answer: str) -> str:
    """A well-formed completion under the "think" template."""
    return f"<think>plan the text</think><answer>{answer}</answer>"


def rollout_batch(tokenizer, rows: list[dict[str, Any]], texts: list[str], uids: list[str]):
    """A verl DataProto as the agent loop hands it to the reward loop: one row per response."""
    import torch
    from verl import DataProto

    prompts = [tokenizer(r["prompt"][-1]["content"], add_special_tokens=False)["input_ids"][:16] for r in rows]
    responses = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    p_len, r_len = max(map(len, prompts)), max(map(len, responses))
    pad = tokenizer.pad_token_id or 0
    prompt_ids = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompts])
    response_ids = torch.tensor([r + [pad] * (r_len - len(r)) for r in responses])
    mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (r_len - len(r))
                         for p, r in zip(prompts, responses)])
    non_tensor = {
        "data_source": np.array([r["data_source"] for r in rows], dtype=object),
        "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
        "extra_info": np.array([r["extra_info"] for r in rows], dtype=object),
        "raw_prompt": np.array([r["prompt"] for r in rows], dtype=object),
        "uid": np.array(uids, dtype=object),
    }
    return DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_ids, response_ids], dim=1)},
        non_tensors=non_tensor)
