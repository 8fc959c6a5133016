"""Load a sequence-classification reward model (the writing RM of LongWriter-Zero's quality reward).

`reward.components.quality.model` names it: a Hub id or a local folder holding a transformers
`AutoModelForSequenceClassification` checkpoint. It is placed on the GPU when one is visible to
the process that scores (`device: auto`), in the checkpoint's own dtype there, fp32 on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from longwriter.models.loading import ModelLoadError

logger = logging.getLogger(__name__)

# Tokenizers without a limit report a huge sentinel (int(1e30)) as model_max_length.
_NO_LIMIT = 10**9


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible here, else "cpu"; anything else is used as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def max_input_length(model: Any, tokenizer: Any) -> int | None:
    """The longest input the RM was built for: the smaller of the tokenizer's and the position limit."""
    limits = [int(getattr(tokenizer, "model_max_length", _NO_LIMIT) or _NO_LIMIT),
              int(getattr(model.config, "max_position_embeddings", None) or _NO_LIMIT)]
    limit = min(limits)
    return limit if limit < _NO_LIMIT else None


def load_reward_model(name_or_path: str, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on `device`; the tokenizer has a pad token the model knows."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    target = resolve_device(device)
    dtype = "auto" if target.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = "local folder" if Path(name_or_path).exists() else "Hub id (offline? download it and pass the folder)"
        raise ModelLoadError(f"reward model {name_or_path!r} ({where}) could not be loaded as a "
                             f"sequence classifier: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(target).eval()
    logger.info("reward model %s on %s (%s, max input %s tokens)", name_or_path, target,
                next(model.parameters()).dtype, max_input_length(model, tokenizer))
    return model, tokenizer
