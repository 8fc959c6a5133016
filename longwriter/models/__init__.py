"""Model sources: the offline SmolLM2 GGUF, a tiny random Llama for tests, and Hub ids."""

from longwriter.models.loading import ModelLoadError, load_model_and_tokenizer, resolve_model_path

__all__ = ["ModelLoadError", "load_model_and_tokenizer", "resolve_model_path"]
