"""The offline provider-schema check (``make lint-tfschema``, devtools/tfschema.py).

The real terraform/ must be clean against the published schemas of the provider versions
versions.tf selects; each mutation below breaks one block in a copy of terraform/ (a
misspelt argument, a missing required one, an argument in the wrong block, ...) and the
check must name it. The schemas come from the cdktf packages ``make lint-tfschema``
installs (tools/tfschema/); the extraction itself is also run on a small hand-made jsii
assembly, so its reading of the jsii format is pinned independently of the packages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from devtools.tfschema import (
    NODE_MODULES,
    PACKAGES,
    SCHEMA_FILE,
    _Extractor,
    check,
    extract,
    satisfies,
)

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    if not SCHEMA_FILE.is_file():
        missing = [p for p in PACKAGES if not (NODE_MODULES / p / ".jsii").is_file()]
        if missing:
            pytest.fail(f"{missing} not installed: run `make lint-tfschema` (npm ci in tools/)")
        SCHEMA_FILE.write_text(json.dumps(extract()), encoding="utf-8")
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def test_the_schemas_are_the_selected_provider_versions(schemas: dict[str, Any]) -> None:
    versions = {source: s["version"] for source, s in schemas.items()}
    assert versions == {
        "hashicorp/google": "6.50.0",
        "hashicorp/google-beta": "6.50.0",
        "hashicorp/random": "3.7.2",
        "hashicorp/time": "0.13.1",
    }
    bucket = schemas["hashicorp/google"]["resources"]["google_storage_bucket"]
    assert {n for n, required in bucket["attributes"].items() if required} == {"name", "location"}
    rule = bucket["blocks"]["lifecycle_rule"]["schema"]["blocks"]
    assert rule["action"]["required"] is True
    assert rule["action"]["schema"]["attributes"]["type"] is True


def test_terraform_matches_the_provider_schemas(schemas: dict[str, Any]) -> None:
    problems, notes = check(TERRAFORM_DIR, schemas)
    assert problems == []
    # Only upstash's blocks go unchecked (no offline schema), and they are said to be.
    assert notes
    assert all("upstash" in note for note in notes)


MUTATIONS = [
    pytest.param(
        "gateway.tf",
        [("  api_config_id_prefix = ", "  api_config_id_prefx  = ")],
        "unsupported argument 'api_config_id_prefx' (did you mean 'api_config_id_prefix'?)",
        id="misspelt-argument",
    ),
    pytest.param(
        "gateway.tf",
        [('  gateway_id   = "${var.name_prefix}-gateway"\n', "")],
        "the argument 'gateway_id' is required",
        id="missing-required-argument",
    ),
    pytest.param(
        "functions.tf",
        [
            ("    entry_point       = each.value.entry_point\n", ""),
            (
                "    max_instance_count",
                "    entry_point = each.value.entry_point\n    max_instance_count",
            ),
        ],
        "google_cloudfunctions2_function.fn > service_config: unsupported argument "
        "'entry_point' (the schema has it in build_config)",
        id="argument-moved-to-the-wrong-block",
    ),
    pytest.param(
        "gateway.tf",
        [("  openapi_documents {\n    document {", "  openapi_documents {\n    documents {")],
        "unsupported argument 'documents' (did you mean 'document'?)",
        id="misspelt-nested-block",
    ),
    pytest.param(
        "gateway.tf",
        [("  openapi_documents {\n    document {\n", "  openapi_documents {\n    document = {\n")],
        "'document' is a block: write document { ... }",
        id="block-written-as-argument",
    ),
    pytest.param(
        "gateway.tf",
        [
            (
                'resource "google_api_gateway_gateway" "api" {',
                'resource "google_api_gateway_gateways" "api" {',
            )
        ],
        "has no resource 'google_api_gateway_gateways'",
        id="unknown-resource-type",
    ),
    pytest.param(
        "versions.tf",
        [('version = "~> 6.50"', 'version = "~> 5.40"')],
        "does not select hashicorp/google 6.50.0",
        id="constraint-does-not-select-the-schema-version",
    ),
]


@pytest.mark.parametrize(("relpath", "edits", "expected"), MUTATIONS)
def test_schema_check_names_the_broken_block(
    schemas: dict[str, Any],
    tmp_path: Path,
    relpath: str,
    edits: list[tuple[str, str]],
    expected: str,
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform"))
    target = copy / relpath
    text = target.read_text()
    for old, new in edits:
        assert old in text, "the text to change is gone; update the mutation"
        text = text.replace(old, new, 1)
    target.write_text(text)
    problems, _ = check(copy, schemas)
    assert any(expected in p for p in problems), problems
    # Only the broken block is reported, at its file and line.
    assert all(p.startswith(str(copy)) for p in problems), problems
    assert len({p.split(" > ")[0].split(": ")[0] for p in problems}) == 1, problems


def test_dynamic_blocks_are_checked_like_blocks(schemas: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform"))
    target = copy / "functions.tf"
    text = target.read_text()
    old = 'dynamic "secret_environment_variables" {'
    assert old in text
    target.write_text(text.replace(old, 'dynamic "secret_environment_variable" {', 1))
    problems, _ = check(copy, schemas)
    assert any("'secret_environment_variable'" in p for p in problems), problems


# The jsii shapes the extraction relies on, in a hand-made assembly.
_P = "@x/provider-demo"
ASSEMBLY = {
    "types": {
        f"{_P}.thing.Thing": {
            "base": "cdktf.TerraformResource",
            "docs": {
                "summary": "Represents a {@link https://registry.terraform.io/providers/"
                "x/demo/1.2.3/docs/resources/thing demo_thing}."
            },
            "initializer": {
                "parameters": [
                    {"name": "scope", "type": {"fqn": "constructs.Construct"}},
                    {"name": "config", "type": {"fqn": f"{_P}.thing.ThingConfig"}},
                ]
            },
        },
        f"{_P}.thing.ThingConfig": {
            "datatype": True,
            "properties": [
                {
                    "name": "displayName",
                    "docs": {
                        "remarks": "Docs at Terraform Registry: {@link https://registry."
                        "terraform.io/providers/x/demo/1.2.3/docs/resources/thing"
                        "#display_name Thing#display_name}"
                    },
                    "type": {"primitive": "string"},
                },
                {"name": "ipv4Enabled", "optional": True, "type": {"primitive": "boolean"}},
                {
                    "name": "rule",
                    "optional": True,
                    "type": {
                        "union": {
                            "types": [
                                {"fqn": "cdktf.IResolvable"},
                                {
                                    "collection": {
                                        "kind": "array",
                                        "elementtype": {"fqn": f"{_P}.thing.ThingRule"},
                                    }
                                },
                            ]
                        }
                    },
                },
            ],
        },
        f"{_P}.thing.ThingRule": {
            "datatype": True,
            "properties": [{"name": "action", "type": {"primitive": "string"}}],
        },
    }
}


def test_extraction_reads_the_jsii_shapes() -> None:
    schema = _Extractor(ASSEMBLY).provider()
    assert schema["resources"] == {
        "demo_thing": {
            "attributes": {"display_name": True, "ipv4_enabled": False},
            "blocks": {
                "rule": {
                    "required": False,
                    "schema": {"attributes": {"action": True}, "blocks": {}},
                }
            },
        }
    }


@pytest.mark.parametrize(
    ("version", "constraint", "ok"),
    [
        ("6.50.0", "~> 6.30", True),
        ("7.0.0", "~> 6.30", False),
        ("6.29.0", "~> 6.30", False),
        ("0.13.1", "~> 0.12", True),
        ("0.13.1", "~> 0.12.1", False),
        ("3.7.2", ">= 3.6, < 4.0", True),
        ("1.9.0", "= 1.9", True),
        ("1.9.1", "!= 1.9.1", False),
    ],
)
def test_version_constraints(version: str, constraint: str, ok: bool) -> None:
    assert satisfies(version, constraint) is ok
