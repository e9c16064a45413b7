"""Configuration fails fast, naming every bad variable, and never repeats a secret."""

from __future__ import annotations

import pytest

from shared.config import AuthMode, ConfigError, ServiceSettings, load, parse_principal_tokens


def test_defaults_load_from_an_empty_environment() -> None:
    settings = load(ServiceSettings, {}, "SVC_")
    assert settings.listen_addr == "127.0.0.1:0"
    assert settings.auth_mode is AuthMode.TOKEN
    assert settings.database_url is None


def test_every_bad_variable_is_named_at_once() -> None:
    env = {"SVC_DB_POOL_MAX": "0", "SVC_AUTH_MODE": "open", "SVC_LISTEN_ADDR": "no port", "OTHER_DB_POOL_MAX": "x"}
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings, env, "SVC_")
    named = {p.split(":")[0] for p in caught.value.problems}
    assert named == {"SVC_DB_POOL_MAX", "SVC_AUTH_MODE", "SVC_LISTEN_ADDR"}


def test_secrets_are_not_repeated_in_errors_or_reprs() -> None:
    secret = "operator:" + "s3cr3t-value-that-is-long"
    settings = load(
        ServiceSettings, {"SVC_PRINCIPAL_TOKENS": secret, "SVC_DATABASE_URL": "postgresql://u:pw@h/d"}, "SVC_"
    )
    assert "s3cr3t" not in repr(settings) and "pw@" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings, {"SVC_PRINCIPAL_TOKENS": "operator:short-s3cr3t"}, "SVC_")
    assert "short-s3cr3t" not in str(caught.value)
    assert caught.value.problems[0].startswith("SVC_PRINCIPAL_TOKENS")


def test_principal_tokens_parse() -> None:
    assert parse_principal_tokens("operator:0123456789abcdef0,scanner:fedcba98765432100") == {
        "0123456789abcdef0": "operator",
        "fedcba98765432100": "scanner",
    }
    for bad in ["operator", "Operator:0123456789abcdef0", "a:short", "a:0123456789abcdef0,b:0123456789abcdef0"]:
        with pytest.raises(ValueError):
            parse_principal_tokens(bad)


@pytest.mark.parametrize("listen_addr", ["0.0.0.0:50051", ":50051", "10.1.2.3:50051", "oracle.example:443"])
def test_insecure_dev_is_refused_off_loopback(listen_addr: str) -> None:
    env = {"SVC_AUTH_MODE": "insecure-dev", "SVC_LISTEN_ADDR": listen_addr}
    with pytest.raises(ConfigError) as caught:
        load(ServiceSettings, env, "SVC_")
    (problem,) = caught.value.problems
    assert problem.startswith("SVC_AUTH_MODE: ")
    assert "loopback" in problem


@pytest.mark.parametrize("listen_addr", ["127.0.0.1:0", "localhost:50051", "127.0.0.2:7000"])
def test_insecure_dev_is_allowed_on_loopback(listen_addr: str) -> None:
    env = {"SVC_AUTH_MODE": "insecure-dev", "SVC_LISTEN_ADDR": listen_addr}
    assert load(ServiceSettings, env, "SVC_").auth_mode is AuthMode.INSECURE_DEV
