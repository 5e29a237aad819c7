"""Adding an AI provider touches its module, the factory, pricing and config only
(issue 24 item 6): everything else names the provider generically (``AI_*``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from shared.ai.client import AIClient
from shared.ai.factory import CLIENTS
from shared.ai.pricing import price_for
from shared.config import DEFAULT_AI_PROVIDER, AiProvider
from shared.needs import NEED_SECRETS, Need

ROOT = Path(__file__).resolve().parents[2]

# Where a provider's own name may appear in a setting, a secret or a Terraform name:
# the provider modules (shared/ai/providers/), and the table of the older names of the AI
# settings (config) with the Terraform moves that keep the renamed secret. (Code names
# such as MINIMAX_WIRE or the fakes' OPENAI_PATH are not settings.)
_MAY_NAME_A_PROVIDER = {"shared/config/__init__.py", "terraform/secrets.tf"}
_PROVIDER_MODULES = "shared/ai/providers/"
_PROVIDER_SETTING = re.compile(r"\b(?:MINIMAX|OPENAI)_(?!WIRE\b|PATH\b)[A-Z_]+|\bvar\.minimax_\w+")


def test_every_configurable_provider_has_a_client_and_every_client_a_setting() -> None:
    assert set(get_args(AiProvider)) - {"offline"} == set(CLIENTS)
    assert DEFAULT_AI_PROVIDER in CLIENTS


def test_each_client_is_the_generic_client_with_defaults_and_a_price() -> None:
    unknown = price_for("no-such-model-anywhere")
    for name, client in CLIENTS.items():
        assert issubclass(client, AIClient)
        assert client.wire.name == name
        assert client.wire.default_base_url.startswith("https://")
        assert client.wire.default_model
        assert price_for(client.wire.default_model) != unknown, name


def test_the_ai_secret_is_named_generically() -> None:
    assert NEED_SECRETS[Need.AI] == ("AI_API_KEY",)


def test_settings_secrets_and_terraform_name_no_provider() -> None:
    files = [
        *(ROOT / "shared").rglob("*.py"),
        *(ROOT / "terraform").glob("*.tf"),
        *(ROOT / "terraform" / "environments").glob("*.tfvars"),
        ROOT / "terraform" / "functions.json",
        *(ROOT / "devtools").glob("*.py"),
    ]
    found = {
        f"{path.relative_to(ROOT)}: {match}"
        for path in files
        if str(path.relative_to(ROOT)) not in _MAY_NAME_A_PROVIDER
        and not str(path.relative_to(ROOT)).startswith(_PROVIDER_MODULES)
        for match in _PROVIDER_SETTING.findall(path.read_text(encoding="utf-8"))
    }
    assert not found, sorted(found)
