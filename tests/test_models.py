"""Model sources: tiny random (mechanics), the offline SmolLM2 (slow), Hub ids offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from longwriter.models import ModelLoadError, load_model_and_tokenizer, resolve_model_path

from conftest import ROOT, compose


def test_tiny_random_is_cached_and_shares_the_smollm2_tokenizer() -> None:
    cfg = compose(["model=tiny_random"])
    path = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    assert resolve_model_path(cfg.model, cfg.paths.cache_dir) == path  # second call reuses the cache
    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)
    assert model.config.num_hidden_layers == 2
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"
    assert model.config.vocab_size == len(tokenizer)


def test_hub_model_offline_fails_with_one_clear_message(tmp_path) -> None:
    script = (
        "from longwriter.models import resolve_model_path, ModelLoadError\n"
        "try:\n"
        "    resolve_model_path({'name': 'x', 'source': 'hub', 'hub_id': 'Qwen/Qwen2.5-7B-Instruct'}, '.')\n"
        "except ModelLoadError as err:\n"
        "    print('ERROR:', err)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "ERROR: could not load model 'Qwen/Qwen2.5-7B-Instruct'" in proc.stdout, proc.stdout + proc.stderr
    assert "model.hub_id=/path/to/local/folder" in proc.stdout


def test_unknown_source_and_bad_dtype_are_named() -> None:
    with pytest.raises(ModelLoadError, match="model.source='ftp'"):
        resolve_model_path({"name": "x", "source": "ftp"}, ".")
    cfg = compose(["model=tiny_random", "model.dtype=float42"])
    with pytest.raises(ModelLoadError, match="model.dtype='float42' is not a torch dtype"):
        load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)


def test_train_cli_with_offline_hub_model_exits_with_the_message(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "longwriter.train", "model=qwen2_5_7b_instruct", f"paths.output_root={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "could not load model 'Qwen/Qwen2.5-7B-Instruct'" in proc.stderr


@pytest.mark.slow
def test_smollm2_loads_offline_and_writes_english() -> None:
    cfg = compose([])
    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)
    messages = [{"role": "user", "content": "Write one sentence about the sea."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=30, do_sample=False)
    text = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    words = text.split()
    assert len(words) >= 5, text
    # A trained model writes real words: most tokens are alphabetic English words, not random pieces.
    assert sum(w.strip(".,!?;:'\"").isalpha() for w in words) / len(words) > 0.7, text


def test_model_cache_folder_does_not_depend_on_the_load_dtype() -> None:
    from longwriter.models.loading import _cache_key

    base = {"name": "tiny_random", "source": "random", "seed": 0, "dtype": "float32"}
    assert _cache_key(base) == _cache_key({**base, "dtype": "bfloat16"})
    assert _cache_key(base) != _cache_key({**base, "seed": 1})
