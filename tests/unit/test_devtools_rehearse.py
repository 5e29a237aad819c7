"""The rehearsal configures each function as Terraform does: the same plain variables
(pointed at local stand-ins) and the same secrets, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from devtools.rehearse import production_env
from shared.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
# Extra to Terraform's: a key prefix so a run never meets another's keys on a shared Redis.
REHEARSAL_ONLY = {"REDIS_KEY_PREFIX"}


def terraform_plain_env() -> set[str]:
    text = (ROOT / "terraform" / "functions.tf").read_text(encoding="utf-8")
    block = re.search(r"plain_env = \{\n(.*?)\n  \}", text, re.S)
    assert block, "plain_env not found in terraform/functions.tf"
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", block.group(1), re.M))


def env() -> dict[str, str]:
    return production_env(
        minimax_url="http://127.0.0.1:1",
        upstash_url="http://127.0.0.1:2",
        qstash_url="http://127.0.0.1:3",
        worker_url="http://127.0.0.1:4",
        jwks_url="http://127.0.0.1:5/.well-known/jwks.json",
        page_url="http://localhost:6/",
        log_level="INFO",
        redis_key_prefix="rh1",
    )


def test_plain_variables_are_terraforms() -> None:
    assert set(env()) - REHEARSAL_ONLY == terraform_plain_env()


def test_the_production_check_passes_with_them_and_the_secrets() -> None:
    secrets = {
        "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
        "UPSTASH_REDIS_REST_TOKEN": "t",
        "QSTASH_TOKEN": "q",
        "QSTASH_CURRENT_SIGNING_KEY": "c" * 64,
        "QSTASH_NEXT_SIGNING_KEY": "n" * 64,
        "AI_API_KEY": "m",
        "CURSOR_SECRET": "s" * 64,
    }
    settings = load_settings({**env(), **secrets})
    assert settings.is_production
    assert settings.effective_queue_backend == "qstash"


def test_every_mounted_secret_but_stripes_has_a_value() -> None:
    from devtools.rehearse import Rehearsal
    from shared.needs import NEED_SECRETS, OPTIONAL_NEEDS, Need

    rehearsal = Rehearsal(redis_url="redis://127.0.0.1:1/0", pg_admin_url="postgresql://x@y/z")
    rehearsal.secrets["DATABASE_URL"] = "postgresql://u@127.0.0.1:5432/db"
    stripe = {*NEED_SECRETS[Need.STRIPE], *NEED_SECRETS[Need.STRIPE_WEBHOOK]}
    # The optional needs (fallback provider, notice webhook) are off in the rehearsal.
    always = {s for need in set(Need) - OPTIONAL_NEEDS for s in NEED_SECRETS[need]}
    # Of the optional needs, the fallback provider is on (the notice webhook is not).
    wanted = always - stripe | set(NEED_SECRETS[Need.AI_FALLBACK])
    assert set(rehearsal.secrets) == wanted


def test_a_function_gets_only_its_own_secrets() -> None:
    from devtools.rehearse import Rehearsal
    from shared.registry import function_by_name

    rehearsal = Rehearsal(redis_url="redis://127.0.0.1:1/0", pg_admin_url="postgresql://x@y/z")
    rehearsal.secrets["DATABASE_URL"] = "postgresql://u@127.0.0.1:5432/db"
    health = function_by_name("health")
    assert health is not None
    got = rehearsal.function_env(health, env())
    assert got["APP_FUNCTION"] == "health"
    assert set(got) - set(env()) - {"APP_FUNCTION"} == set(health.secrets) - {
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    }
    assert "AI_API_KEY" not in got


def terraform_need_env(need: str) -> set[str]:
    text = (ROOT / "terraform" / "functions.tf").read_text(encoding="utf-8")
    block = re.search(rf"^    {need} = (.*?)^    \)?\n", text, re.S | re.M)
    assert block, f"need_env.{need} not found in terraform/functions.tf"
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", block.group(1), re.M))


def test_the_fallback_settings_are_terraforms() -> None:
    from devtools.rehearse import fallback_env

    prices = {"FALLBACK_AI_PRICE_IN", "FALLBACK_AI_PRICE_OUT"}  # set only when given
    assert set(fallback_env("http://127.0.0.1:7/v1")) == terraform_need_env("ai_fallback") - prices


def test_only_the_worker_gets_the_fallback_provider() -> None:
    from devtools.rehearse import Rehearsal, fallback_env
    from shared.ai.factory import fallback_from_settings
    from shared.needs import Need
    from shared.registry import FUNCTIONS

    rehearsal = Rehearsal(redis_url="redis://127.0.0.1:1/0", pg_admin_url="postgresql://x@y/z")
    rehearsal.secrets["DATABASE_URL"] = "postgresql://u@127.0.0.1:5432/db"
    rehearsal.need_env[Need.AI_FALLBACK] = fallback_env("http://127.0.0.1:7/v1")
    for spec in FUNCTIONS:
        got = rehearsal.function_env(spec, env())
        fallback = {k for k in got if k.startswith(("FALLBACK_", "CIRCUIT_"))}
        if spec.name != "worker":
            assert fallback == set(), spec.name
            continue
        assert got["FALLBACK_AI_API_KEY"] == rehearsal.secrets["FALLBACK_AI_API_KEY"]
        assert "NOTICE_WEBHOOK_SECRET" not in got
        settings = load_settings(got)
        assert settings.is_production
        client = fallback_from_settings(settings)
        assert client is not None
