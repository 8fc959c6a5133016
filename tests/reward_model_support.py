"""A tiny random sequence-classification reward model saved to a folder, built like `model=tiny_random`
(same architecture and SmolLM2 tokenizer, a one-logit score head), for the RM path's CPU tests."""

from __future__ import annotations

from pathlib import Path


def build_tiny_rm(folder: Path) -> Path:
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from longwriter.models import resolve_model_path
    from longwriter.paths import CONF_DIR, project_root

    tiny = OmegaConf.load(CONF_DIR / "model" / "tiny_random.yaml")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(tiny, project_root() / ".cache"))
    config = LlamaConfig(vocab_size=len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         **OmegaConf.to_container(tiny.architecture))
    config.max_position_embeddings = 64  # a short input limit, so that truncation shows in tests
    torch.manual_seed(1)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
