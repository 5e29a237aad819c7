import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.config import ConfigError, Settings, check_configuration, load_settings

PROD_OK = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://u:p@db:5432/reel",
    "UPSTASH_REDIS_REST_URL": "https://x.upstash.io",
    "UPSTASH_REDIS_REST_TOKEN": "tok",
    "AUTH_JWKS_URL": "https://issuer/jwks",
    "AUTH_ISSUER": "https://issuer",
    "AUTH_AUDIENCE": "reel",
    "CURSOR_SECRET": "c" * 32,
    "QSTASH_TOKEN": "q",
    "QSTASH_CURRENT_SIGNING_KEY": "k1",
    "QSTASH_NEXT_SIGNING_KEY": "k2",
    "AI_API_KEY": "m",
    "WORKER_URL": "https://worker.example.com",
}


def test_development_defaults() -> None:
    s = load_settings({})
    assert s.app_env == "development"
    assert s.effective_queue_backend == "local"
    assert s.effective_ai_provider == "offline"
    assert s.effective_worker_url == "http://127.0.0.1:8080"
    assert s.effective_hs256_secret
    assert s.lease_ttl_s == s.max_job_runtime_s + s.queue_delay_allowance_s


def test_minimax_key_selects_minimax_in_development() -> None:
    assert load_settings({"AI_API_KEY": "k"}).effective_ai_provider == "minimax"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("MINIMAX_API_KEY", "AI_API_KEY", "ai_api_key"),
        ("MINIMAX_BASE_URL", "AI_BASE_URL", "ai_base_url"),
        ("MINIMAX_MODEL", "AI_MODEL", "ai_model"),
    ],
)
def test_the_spec_names_of_the_ai_settings_are_still_read(old: str, new: str, field: str) -> None:
    # SPEC §6 names them MINIMAX_*: an environment set up from it keeps working.
    assert getattr(load_settings({old: "https://x"}), field) == "https://x"
    assert getattr(load_settings({old: "https://x", new: "https://x"}), field) == "https://x"
    with pytest.raises(ConfigError, match=f"^{old}: the older name of {new}"):
        load_settings({old: "https://x", new: "https://y"})
    with pytest.raises(ConfigError, match=f"^{old}: the older name of {new}"):
        check_configuration({old: "https://x", new: "https://y"})


def test_the_spec_key_name_still_selects_minimax() -> None:
    assert load_settings({"MINIMAX_API_KEY": "k"}).effective_ai_provider == "minimax"


def test_base_url_and_model_default_to_the_providers_own() -> None:
    from shared.ai.factory import llm_from_settings, llm_identity

    settings = load_settings({"AI_API_KEY": "k"})
    assert (settings.ai_base_url, settings.ai_model) == (None, None)
    assert llm_identity(settings) == ("minimax", "MiniMax-M2.5")
    assert "https://api.minimax.io" in repr(llm_from_settings(settings))
    empty = load_settings({"AI_API_KEY": "k", "AI_MODEL": "", "AI_BASE_URL": ""})  # Terraform's
    assert llm_identity(empty) == ("minimax", "MiniMax-M2.5")
    assert "https://api.minimax.io" in repr(llm_from_settings(empty))


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="^PORT:"):
        load_settings({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="^APP_ENV:"):
        load_settings({"APP_ENV": "staging"})


def test_cors_origins_split_and_normalised() -> None:
    s = load_settings({"CORS_ALLOWED_ORIGINS": "https://a.com, https://b.com/ ,"})
    assert s.cors_allowed_origins == ("https://a.com", "https://b.com")


def test_production_accepts_complete_config() -> None:
    s = load_settings(PROD_OK)
    assert s.is_production
    assert s.effective_queue_backend == "qstash"
    assert s.effective_ai_provider == "minimax"
    assert s.effective_hs256_secret is None


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"AUTH_HS256_SECRET": "x"}, "AUTH_HS256_SECRET"),
        ({"QUEUE_BACKEND": "local"}, "QUEUE_BACKEND"),
        ({"AI_PROVIDER": "offline"}, "AI_PROVIDER"),
    ],
)
def test_production_refuses_dev_only_settings(extra: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        load_settings({**PROD_OK, **extra})


@pytest.mark.parametrize(
    "missing", ["DATABASE_URL", "AUTH_JWKS_URL", "CURSOR_SECRET", "AI_API_KEY"]
)
def test_production_requires(missing: str) -> None:
    env = {k: v for k, v in PROD_OK.items() if k != missing}
    with pytest.raises(ConfigError, match=f"^{missing}:"):
        load_settings(env)


def test_production_requires_some_redis() -> None:
    env = {k: v for k, v in PROD_OK.items() if not k.startswith("UPSTASH")}
    with pytest.raises(ConfigError, match="^REDIS_URL:"):
        load_settings(env)
    assert load_settings({**env, "REDIS_URL": "redis://r:6379/0"}).redis_url


class FakeSecretClient:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: list[str] = []

    def access_secret_version(self, *, name: str) -> Any:
        self.calls.append(name)
        if name not in self.values:
            raise RuntimeError("NOT_FOUND")
        return SimpleNamespace(payload=SimpleNamespace(data=self.values[name].encode()))


def test_secret_manager_names_are_resolved_with_one_client() -> None:
    name = "projects/p/secrets/minimax/versions/3"
    fake = FakeSecretClient(
        {name: "sk-live", "projects/p/secrets/db/versions/1": "postgresql://x@y/z"}
    )
    made: list[int] = []

    def factory() -> FakeSecretClient:
        made.append(1)
        return fake

    s = load_settings(
        {"AI_API_KEY": name, "DATABASE_URL": "projects/p/secrets/db/versions/1"}, factory
    )
    assert s.ai_api_key == "sk-live"
    assert s.database_url == "postgresql://x@y/z"
    assert made == [1]
    assert sorted(fake.calls) == sorted([name, "projects/p/secrets/db/versions/1"])


def test_no_secret_names_means_no_client() -> None:
    def factory() -> FakeSecretClient:
        raise AssertionError("client must not be created")

    assert load_settings({"AI_API_KEY": "plain"}, factory).ai_api_key == "plain"


def test_unreadable_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="^AI_API_KEY: could not read secret"):
        load_settings(
            {"AI_API_KEY": "projects/p/secrets/x/versions/1"}, lambda: FakeSecretClient({})
        )


def test_secret_manager_module_not_imported_by_config() -> None:
    import subprocess
    import sys

    code = "import shared.config, sys; print('google.cloud.secretmanager' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- Per-function requirements (issue 12 item 6): APP_FUNCTION names a registry entry ---


def _only(*names: str) -> dict[str, str]:
    plain = {k: v for k, v in PROD_OK.items() if not k.isupper() or k in _PLAIN}
    return {**plain, **{n: PROD_OK[n] for n in names}}


_PLAIN = {
    "APP_ENV", "UPSTASH_REDIS_REST_URL", "AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE",
    "WORKER_URL",
}  # fmt: skip


def test_health_starts_with_only_the_database_and_redis() -> None:
    s = load_settings(
        {**_only("DATABASE_URL", "UPSTASH_REDIS_REST_TOKEN"), "APP_FUNCTION": "health"}
    )
    assert s.app_function == "health"
    assert s.stripe_secret_key is None
    assert s.ai_api_key is None


def test_without_app_function_production_requires_every_need() -> None:
    with pytest.raises(ConfigError, match="^QSTASH_TOKEN:"):
        load_settings(_only("DATABASE_URL", "UPSTASH_REDIS_REST_TOKEN", "CURSOR_SECRET"))


@pytest.mark.parametrize(
    ("function", "missing"),
    [
        ("worker", "AI_API_KEY"),
        ("worker", "QSTASH_CURRENT_SIGNING_KEY"),
        ("create", "QSTASH_TOKEN"),
        ("library", "CURSOR_SECRET"),
        ("drafts", "DATABASE_URL"),
        ("usage", "REDIS_URL"),
    ],
)
def test_each_function_requires_what_it_uses(function: str, missing: str) -> None:
    from shared.registry import function_by_name

    spec = function_by_name(function)
    assert spec is not None
    env = {**_only(*spec.secrets), "APP_FUNCTION": function}
    load_settings(env)  # complete for this function
    drop = "UPSTASH_REDIS_REST_TOKEN" if missing == "REDIS_URL" else missing
    with pytest.raises(ConfigError, match=f"^{missing}:"):
        load_settings({k: v for k, v in env.items() if k != drop})


def test_unknown_app_function_is_refused() -> None:
    with pytest.raises(ConfigError, match="^APP_FUNCTION:"):
        load_settings({**PROD_OK, "APP_FUNCTION": "nope"})


# ---- start-up validation (issue 11 item 4) ----------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
_CONFIG_PREFIXES = (
    "APP_ENV", "APP_FUNCTION", "DATABASE_URL", "REDIS_", "UPSTASH_", "AUTH_", "QSTASH_",
    "QUEUE_", "WORKER_URL", "AI_", "MINIMAX_", "CURSOR_", "STRIPE_", "PORT", "LOG_LEVEL",
)  # fmt: skip


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QUEUE_BACKEND": "qstash", "QSTASH_TOKEN": "q"}, "WORKER_URL"),
        ({"QUEUE_BACKEND": "qstash", "WORKER_URL": "https://w"}, "QSTASH_TOKEN"),
        ({"AI_PROVIDER": "minimax"}, "AI_API_KEY"),
        ({"AUTH_HS256_SECRET": "short"}, "AUTH_HS256_SECRET"),
        ({"QSTASH_RETRIES": "999"}, "QSTASH_RETRIES"),
    ],
)
def test_settings_that_cannot_work_together_are_refused(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        load_settings(env)
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        check_configuration(env)


def test_production_needs_an_https_jwks_url() -> None:
    with pytest.raises(ConfigError, match="^AUTH_JWKS_URL:"):
        load_settings({**PROD_OK, "AUTH_JWKS_URL": "http://issuer/jwks"})
    load_settings({**PROD_OK, "AUTH_JWKS_URL": "http://127.0.0.1:9999/jwks"})  # the rehearsal


def test_check_configuration_fetches_no_secret() -> None:
    # A Secret Manager name counts as set; the value is fetched by the first request.
    check_configuration({**PROD_OK, "AI_API_KEY": "projects/p/secrets/m/versions/1"})


def _import_function(module: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-c", f"import functions.{module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QUEUE_BACKEND": "qstash", "QSTASH_TOKEN": "q"}, "WORKER_URL"),
        ({"QSTASH_RETRIES": "999"}, "QSTASH_RETRIES"),
    ],
)
def test_a_function_refuses_to_start_on_bad_configuration(
    env: dict[str, str], variable: str
) -> None:
    result = _import_function("create", env)
    assert result.returncode != 0
    assert f"ConfigError: {variable}:" in result.stderr


def test_a_function_starts_without_connecting_to_anything() -> None:
    # Unreachable addresses: an import that connected would fail or hang.
    result = _import_function(
        "usage",
        {
            **PROD_OK,
            "DATABASE_URL": "postgresql://u:p@192.0.2.1:5432/reel",
            "UPSTASH_REDIS_REST_URL": "https://192.0.2.1",
            "AUTH_JWKS_URL": "https://192.0.2.1/jwks",
        },
    )
    assert result.returncode == 0, result.stderr


# ---- the settings are a stdlib dataclass (issue 17: no pydantic on a cold start) ----------


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"PORT": " 80 "}, "port", 80),
        ({"PORT": "80.0"}, "port", 80),
        ({"PORT": "+8_080"}, "port", 8080),
        ({"SPEND_ALERT_USD": " 0.10 "}, "spend_alert_usd", Decimal("0.10")),
        ({"LOG_LEVEL": "DEBUG"}, "log_level", "DEBUG"),
        ({"QUEUE_BACKEND": "qstash", "QSTASH_TOKEN": "q", "WORKER_URL": "https://w"},
         "queue_backend", "qstash"),
        ({"DATABASE_URL": " kept as is "}, "database_url", " kept as is "),
        ({"UNRELATED": "x"}, "app_env", "development"),
    ],
)  # fmt: skip
def test_values_are_read_as_the_environment_writes_them(
    env: dict[str, str], field: str, value: object
) -> None:
    assert getattr(load_settings(env), field) == value


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("PORT", "80.5", "Input should be a valid integer"),
        ("PORT", "0", "Input should be greater than or equal to 1"),
        ("AI_MAX_TOKENS", "65537", "Input should be less than or equal to 65536"),
        ("LOG_LEVEL", "debug", "Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("QUEUE_BACKEND", "", "Input should be 'qstash' or 'local'"),
        ("REDIS_KEY_PREFIX", "a b", "String should match pattern"),
        ("REDIS_KEY_PREFIX", "app\n", "String should match pattern"),
        ("SPEND_ALERT_USD", "nan", "Input should be a finite number"),
        ("SPEND_ALERT_USD", "-1", "Input should be greater than or equal to 0"),
        ("SPEND_ALERT_USD", "five", "Input should be a valid decimal"),
    ],
)
def test_each_rule_names_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: {re.escape(message)}"):
        load_settings({variable: raw})


def test_the_first_bad_variable_in_field_order_is_named() -> None:
    with pytest.raises(ConfigError, match="^APP_ENV:"):
        load_settings({"PORT": "x", "APP_ENV": "staging"})


def test_a_changed_copy_obeys_the_same_rules() -> None:
    s = load_settings({})
    assert s.replace(port=9000).port == 9000
    assert s.port == 8080  # frozen: the original is unchanged
    with pytest.raises(ConfigError, match="^PORT:"):
        s.replace(port=0)
    with pytest.raises(ConfigError, match="^APP_ENV:"):
        Settings(app_env="staging")  # type: ignore[arg-type]


def test_every_variable_has_one_field() -> None:
    names = [var.name for var in Settings.env_vars().values()]
    assert len(names) == len(set(names))
    assert {"APP_ENV", "DATABASE_URL", "SPEND_ALERT_USD", "CORS_ALLOWED_ORIGINS"} <= set(names)
