from longwriter.tracking.redact import REDACTED, flatten, is_secret_key, redact


def test_secret_values_are_redacted_but_env_var_names_and_token_counts_kept() -> None:
    cfg = {
        "judge": {"api_key": "sk-live-123", "api_key_env": "OPENAI_API_KEY", "max_tokens": 512,
                  "headers": {"Authorization": "Bearer sk-live-123"}, "password": ""},
        "hub_token": "hf_abc", "tpm": 1000,
    }
    out = redact(cfg)
    assert out["judge"]["api_key"] == REDACTED
    assert out["judge"]["headers"]["Authorization"] == REDACTED
    assert out["hub_token"] == REDACTED
    assert out["judge"]["api_key_env"] == "OPENAI_API_KEY"
    assert out["judge"]["max_tokens"] == 512 and out["tpm"] == 1000
    assert out["judge"]["password"] == ""  # nothing to hide
    assert "sk-live-123" not in str(out)


def test_is_secret_key_table() -> None:
    table = {"api_key": True, "OPENAI_API_KEY": True, "secret": True, "token": True,
             "api_key_env": False, "max_new_tokens": False, "model": False, "completion_tokens": False,
             "tokenizer_from": False, "hub_token": True, "access_token": True}
    assert {k: is_secret_key(k) for k in table} == table


def test_flatten_nested() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}
