"""Every document the cloud reads from terraform/, rendered and parsed by the real parsers.

Each ``templatefile()`` call in terraform/ is rendered as Terraform would render it
(``tests/support/tftemplate.py``) with realistic values for its variables, then handed to
the parser of the service that reads it:

- ``gateway/openapi2.yaml.tftpl`` -> PyYAML, then openapi-spec-validator as Swagger 2.0
  (API Gateway reads OpenAPI 2.0 YAML), then its ``x-google-backend`` settings against the
  registry; the committed file must equal ``make gateway-openapi``'s output;
- ``dashboards/operations.json.tftpl`` -> ``json``, then the Monitoring API's own
  ``Dashboard`` protobuf message with unknown fields refused (the API refuses them).

A ``templatefile()`` this file has no realistic values and no parser for fails the test,
as does a variable passed by the .tf file that the values here do not cover (or the
reverse). Like tests/integration/test_terraform.py, each ``check_*`` returns the problems
it found, so the mutation tests below run the same checks on broken copies of terraform/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud.monitoring_dashboard_v1.types import Dashboard
from google.protobuf.json_format import ParseError
from openapi_spec_validator import OpenAPIV2SpecValidator

from devtools.gateway import GATEWAY_TEMPLATE, gateway_operations, render_gateway_template
from shared.registry import FUNCTIONS, function_by_name, function_for_path
from tests.integration.test_terraform import TERRAFORM_DIR, Terraform, load_terraform
from tests.support.tftemplate import TemplateError, render_template

# What a render or a parser raises for a document the cloud would refuse.
REFUSED = (TemplateError, ValueError, yaml.YAMLError, ParseError)

# Realistic inputs: what a staging deployment would pass (var.name_prefix, the function
# URLs Cloud Functions gen2 reports in service_config[0].uri).
NAME_PREFIX = "reel-staging"
ENVIRONMENT = "staging"
X_GOOGLE_BACKEND_FIELDS = frozenset(
    {"address", "jwt_audience", "disable_auth", "path_translation", "deadline", "protocol"}
)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def function_url(name: str) -> str:
    return f"https://{NAME_PREFIX}-{name}-7fq2kz3xaa-ew.a.run.app"


# ---------------------------------------------------------------------------------------
# The templatefile() calls, and realistic values for each template's variables
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateCall:
    source: str  # the .tf file, relative to terraform/
    template: str  # the template, relative to terraform/ (path.module)
    variables: tuple[str, ...]  # the keys of the vars object, as written


_CALL_RE = re.compile(r'templatefile\(\s*"\$\{path\.module\}/([^"]+)"\s*,\s*\{')


def _top_level_keys(text: str, start: int) -> tuple[str, ...]:
    """The keys of the HCL object literal whose ``{`` is at ``start - 1``."""
    keys: list[str] = []
    depth, pos, item_start = 0, start, True
    while pos < len(text):
        char = text[pos]
        if depth == 0 and item_start:
            match = re.match(r"\s*(\w+)\s*=(?!=)", text[pos:])
            item_start = False
            if match:
                keys.append(match.group(1))
                pos += match.end()
                continue
        if char == '"':
            pos += 1
            while text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
        elif char in "{[(":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "}":
            if depth == 0:
                return tuple(keys)
            depth -= 1
        item_start = depth == 0 and char in "\n,"
        pos += 1
    raise ValueError("unterminated object literal")


def templatefile_calls(directory: Path) -> list[TemplateCall]:
    """Every ``templatefile("${path.module}/...", { ... })`` in the .tf files (any module
    under ``directory``; templates named relative to ``directory``)."""
    calls = []
    for path in sorted(directory.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        source = path.relative_to(directory).as_posix()
        module = path.parent.relative_to(directory)
        for match in _CALL_RE.finditer(text):
            keys = _top_level_keys(text, match.end())
            template = (module / match.group(1)).as_posix()
            calls.append(TemplateCall(source, template, tuple(sorted(keys))))
        if text.count("templatefile(") != len(_CALL_RE.findall(text)):
            calls.append(TemplateCall(source, "<not path.module/... + object literal>", ()))
    return calls


def gateway_values(directory: Path, tf: Terraform) -> list[dict[str, Any]]:
    """backends: every deployed function (gateway.tf maps all of them) => its URL; and
    public_invokers both ways (public functions, or private ones behind the gateway)."""
    manifest = json.loads((directory / "functions.json").read_text(encoding="utf-8"))
    backends = {name: function_url(name) for name in manifest["functions"]}
    return [{"backends": backends, "public_invokers": public} for public in (True, False)]


def _metric_name(tf: Terraform, reference: str) -> str:
    """``${google_logging_metric.NAME["KEY"].name}`` => the name that metric is created with."""
    match = re.fullmatch(
        r'\$\{google_logging_metric\.(\w+)(?:\["(\w+)"\])?\.name\}', reference.strip()
    )
    if match is None:
        raise ValueError(f"{reference!r} is not a google_logging_metric name")
    body = tf.resources[("google_logging_metric", match.group(1))]
    name = str(body["name"]).replace("${var.name_prefix}", NAME_PREFIX)
    if match.group(2) is not None:
        name = name.replace("${each.key}", match.group(2))
    if "${" in name:
        raise ValueError(f"cannot resolve the metric name {body['name']!r}")
    return name


def dashboard_values(directory: Path, tf: Terraform) -> list[dict[str, Any]]:
    """environment, and metrics: local.dashboard_metrics with each metric's real name."""
    metrics = tf.locals["dashboard_metrics"]
    return [
        {
            "environment": ENVIRONMENT,
            "metrics": {key: _metric_name(tf, str(ref)) for key, ref in metrics.items()},
        }
    ]


def parse_gateway(text: str) -> dict[str, Any]:
    """What API Gateway does with the document: YAML, then an OpenAPI 2.0 (Swagger) spec."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("the gateway document is not a YAML mapping")
    errors = [e.message for e in OpenAPIV2SpecValidator(doc).iter_errors()]
    if errors:
        raise ValueError(f"not a valid Swagger 2.0 document: {errors[:3]}")
    return doc


def parse_dashboard(text: str) -> dict[str, Any]:
    """What Cloud Monitoring does with dashboard_json: JSON into its Dashboard message."""
    doc = json.loads(text)
    Dashboard.from_json(text, ignore_unknown_fields=False)
    if not isinstance(doc, dict):
        raise ValueError("the dashboard is not a JSON object")
    return doc


@dataclass(frozen=True)
class TemplateCase:
    # Each realistic set of variables the template is rendered with.
    values: Callable[[Path, Terraform], list[dict[str, Any]]]
    parse: Callable[[str], dict[str, Any]]


TEMPLATES: dict[str, TemplateCase] = {
    "gateway/openapi2.yaml.tftpl": TemplateCase(gateway_values, parse_gateway),
    "dashboards/operations.json.tftpl": TemplateCase(dashboard_values, parse_dashboard),
}


def renders(directory: Path, template: str, tf: Terraform | None = None) -> list[str]:
    """The template rendered with each of its realistic sets of variables."""
    tf = tf or load_terraform(directory)
    text = (directory / template).read_text(encoding="utf-8")
    return [render_template(text, v) for v in TEMPLATES[template].values(directory, tf)]


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


def check_templates_render_and_parse(directory: Path) -> list[str]:
    """Each templatefile() renders with realistic values and its reader's parser accepts it."""
    problems: list[str] = []
    calls = templatefile_calls(directory)
    if not calls:
        problems.append("no templatefile() call found in terraform/*.tf")
    tf = load_terraform(directory)
    for call in calls:
        case = TEMPLATES.get(call.template)
        where = f"{call.source}: templatefile({call.template})"
        if case is None:
            problems.append(f"{where}: no realistic values and parser in {__name__}")
            continue
        for values in case.values(directory, tf):
            if tuple(sorted(values)) != call.variables:
                problems.append(f"{where}: passes {call.variables}, test renders {sorted(values)}")
        try:
            for text in renders(directory, call.template, tf):
                case.parse(text)
        except REFUSED as exc:
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
    return problems


def _rendered_gateways(
    directory: Path, tf: Terraform, problems: list[str]
) -> list[tuple[bool, dict[str, Any]]]:
    """(public_invokers, document) for each realistic rendering."""
    template = GATEWAY_TEMPLATE.relative_to("terraform").as_posix()
    if not (directory / template).is_file():
        problems.append(f"{template} is missing")
        return []
    try:
        docs = [parse_gateway(text) for text in renders(directory, template, tf)]
    except REFUSED as exc:
        problems.append(f"{template}: {type(exc).__name__}: {exc}")
        return []
    values = TEMPLATES[template].values(directory, tf)
    return [(bool(v["public_invokers"]), doc) for v, doc in zip(values, docs, strict=True)]


def _check_backend(
    where: str, pattern: str, backend: Any, public: bool, problems: list[str]
) -> None:
    owner = function_for_path(re.sub(r"\{\w+\}", "00000000-0000-0000-0000-000000000000", pattern))
    if owner is None:
        problems.append(f"{where}: no registry function serves {pattern}")
        return
    if not isinstance(backend, dict):
        problems.append(f"{where}: no x-google-backend")
        return
    for name in sorted(backend.keys() - X_GOOGLE_BACKEND_FIELDS):
        problems.append(f"{where}: x-google-backend has no field {name!r}")
    expected = {
        "address": function_url(owner.name),
        "path_translation": "APPEND_PATH_TO_ADDRESS",
        # Public functions read the caller's token; private ones get the gateway's.
        "disable_auth": public,
        "deadline": float(owner.timeout_s),
    }
    for key, value in expected.items():
        if backend.get(key) != value:
            problems.append(f"{where}: {key} is {backend.get(key)!r}, registry says {value!r}")


def check_gateway_document(directory: Path) -> list[str]:
    """The rendered gateway document serves exactly the gateway routes, each sent to the
    function the registry names, with its path translation and its timeout as deadline."""
    problems: list[str] = []
    tf = load_terraform(directory)
    for rtype in ("google_api_gateway_api", "google_api_gateway_api_config"):
        if not tf.resources_of(rtype):
            problems.append(f"{rtype} is missing")
    for public, doc in _rendered_gateways(directory, tf, problems):
        _check_gateway_paths(doc, public, problems)
    return problems


def _check_gateway_paths(doc: dict[str, Any], public: bool, problems: list[str]) -> None:
    if doc.get("swagger") != "2.0":
        problems.append('the gateway document must be OpenAPI 2.0 (swagger: "2.0")')
    served = {
        (pattern, method.upper())
        for pattern, item in doc.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }
    expected = {(p.pattern, m) for p in gateway_operations() for m in p.methods}
    for pattern, method in sorted(expected - served):
        problems.append(f"{method} {pattern} is not in the gateway document")
    for pattern, method in sorted(served - expected):
        problems.append(f"{method} {pattern} is in the gateway document, not the route table")
    for spec in FUNCTIONS:
        direct = spec.auth == "qstash"
        for prefix in spec.paths:
            listed = any(p == prefix.rstrip("/") or p.startswith(prefix) for p, _ in served)
            if direct and listed:
                problems.append(f"{spec.name} is called directly, not via the gateway")
            elif not direct and not listed:
                problems.append(f"{spec.name}: registry path {prefix} is not in the gateway")
    for pattern, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                backend = operation.get("x-google-backend")
                where = f"{method.upper()} {pattern} (public_invokers={public})"
                _check_backend(where, pattern, backend, public, problems)


def check_gateway_generated(directory: Path) -> list[str]:
    """The committed template is what ``make gateway-openapi`` writes, and gateway.tf
    renders it with templatefile()."""
    problems: list[str] = []
    template = GATEWAY_TEMPLATE.relative_to("terraform").as_posix()
    path = directory / template
    if not path.is_file() or path.read_text(encoding="utf-8") != render_gateway_template():
        problems.append(f"{template} differs from devtools/gateway.py: make gateway-openapi")
    if template not in {c.template for c in templatefile_calls(directory)}:
        problems.append(f"the api_config must render {template} with templatefile()")
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "templates_render_and_parse": check_templates_render_and_parse,
    "gateway_document": check_gateway_document,
    "gateway_generated": check_gateway_generated,
}


# ---------------------------------------------------------------------------------------
# The real tree
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cloud_document_invariant_holds(name: str) -> None:
    assert CHECKS[name](TERRAFORM_DIR) == []


def test_every_templatefile_call_is_rendered_here() -> None:
    calls = templatefile_calls(TERRAFORM_DIR)
    assert {c.template for c in calls} == set(TEMPLATES)


@pytest.mark.parametrize("public", [True, False])
def test_gateway_document_lists_every_operation_with_its_backend(public: bool) -> None:
    texts = renders(TERRAFORM_DIR, "gateway/openapi2.yaml.tftpl")
    doc = parse_gateway(texts[0 if public else 1])
    operations = {
        (pattern, method): op["x-google-backend"]
        for pattern, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
    assert len(operations) == sum(len(p.methods) for p in gateway_operations())
    me = function_by_name("me")
    assert me is not None
    assert operations[("/v1/me", "delete")] == {
        "address": "https://reel-staging-me-7fq2kz3xaa-ew.a.run.app",
        "path_translation": "APPEND_PATH_TO_ADDRESS",
        "disable_auth": public,
        "deadline": float(me.timeout_s),
    }
    summary = doc["paths"]["/v1/me"]["delete"]["summary"]
    assert summary == "Delete the account: cancel billing, remove content, pseudonymise usage"


def test_renderer_substitutes_like_terraform() -> None:
    text = 'a: ${jsonencode(backends["x-y"])} $${literal} %%{also} ${n} ${flag} ${m.k}\n'
    values = {"backends": {"x-y": "https://h/<&>"}, "n": 30.0, "flag": True, "m": {"k": "v"}}
    rendered = render_template(text, values)
    assert rendered == 'a: "https://h/\\u003c\\u0026\\u003e" ${literal} %{also} 30 true v\n'
    for bad in ("${missing}", "${m.nope}", "${m}", "%{ if true }x%{ endif }", "${upper2(n)}"):
        with pytest.raises(TemplateError):
            render_template(bad, values)


# ---------------------------------------------------------------------------------------
# Mutations: each breaks one document in a copy of terraform/; its check must notice
# ---------------------------------------------------------------------------------------

ME_SUMMARY = "'Delete the account: cancel billing, remove content, pseudonymise usage'"
DRAFT_PARAMS = (
    "  /v1/drafts/{id}:\n    parameters:\n    - name: id\n      in: path\n"
    "      required: true\n      type: string\n"
)

MUTATIONS = [
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        f"summary: {ME_SUMMARY}",
        f"summary: {ME_SUMMARY.strip(chr(39))}",
        check_templates_render_and_parse,
        id="gateway-unquoted-colon-is-not-yaml",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        DRAFT_PARAMS,
        "  /v1/drafts/{id}:\n",
        check_templates_render_and_parse,
        id="gateway-path-parameter-undeclared-is-not-swagger",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "swagger: '2.0'",
        "openapi: 3.0.3",
        check_templates_render_and_parse,
        id="gateway-not-swagger-2",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        'address: ${jsonencode(backends["me"])}',
        'address: ${jsonencode(backends["account"])}',
        check_templates_render_and_parse,
        id="gateway-backend-of-no-function",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "  title: Reel Content API\n",
        "  title: ${title}\n",
        check_templates_render_and_parse,
        id="gateway-template-variable-not-passed",
    ),
    pytest.param(
        "gateway.tf",
        "        public_invokers = var.public_invokers\n",
        '        public_invokers = var.public_invokers\n        title           = "x"\n',
        check_templates_render_and_parse,
        id="gateway-tf-passes-a-variable-the-test-does-not-render",
    ),
    pytest.param(
        "monitoring.tf",
        'resource "google_monitoring_dashboard" "operations" {',
        'locals {\n  extra = templatefile("${path.module}/dashboards/slo.json.tftpl", {\n'
        "    environment = var.environment\n  })\n}\n\n"
        'resource "google_monitoring_dashboard" "operations" {',
        check_templates_render_and_parse,
        id="templatefile-without-realistic-values",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        'address: ${jsonencode(backends["generations"])}',
        'address: ${jsonencode(backends["drafts"])}',
        check_gateway_document,
        id="gateway-wrong-backend",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "path_translation: APPEND_PATH_TO_ADDRESS",
        "path_translation: CONSTANT_ADDRESS",
        check_gateway_document,
        id="gateway-path-translation",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "disable_auth: ${jsonencode(public_invokers)}",
        "disable_auth: true",
        check_gateway_document,
        id="gateway-disable-auth-ignores-public-invokers",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "deadline: 120.0",
        "deadline: 15.0",
        check_gateway_document,
        id="gateway-deadline-not-the-function-timeout",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "  /v1/usage:\n",
        "  /v1/usage-removed:\n",
        check_gateway_document,
        id="gateway-path-missing",
    ),
    pytest.param(
        "gateway/openapi2.yaml.tftpl",
        "Create a draft and queue its first generation",
        "Create a draft",
        check_gateway_generated,
        id="gateway-hand-edited",
    ),
    pytest.param(
        "dashboards/operations.json.tftpl",
        '"timeSeriesFilterRatio"',
        '"timeSeriesFilterRatios"',
        check_templates_render_and_parse,
        id="dashboard-unknown-field",
    ),
    pytest.param(
        "dashboards/operations.json.tftpl",
        '"ALIGN_DELTA"',
        '"ALIGN_DELTAS"',
        check_templates_render_and_parse,
        id="dashboard-invalid-enum",
    ),
    pytest.param(
        "dashboards/operations.json.tftpl",
        '"columns": 48,',
        '"columns": "forty-eight",',
        check_templates_render_and_parse,
        id="dashboard-wrong-type",
    ),
    pytest.param(
        "dashboards/operations.json.tftpl",
        '"columns": 48,',
        '"columns": 48',
        check_templates_render_and_parse,
        id="dashboard-invalid-json",
    ),
    pytest.param(
        "dashboards/operations.json.tftpl",
        "${metrics.admissions}",
        "${metrics.admission}",
        check_templates_render_and_parse,
        id="dashboard-undefined-metric-key",
    ),
]


@pytest.mark.parametrize(("relpath", "old", "new", "check"), MUTATIONS)
def test_check_fails_when_a_document_is_broken(
    tmp_path: Path, relpath: str, old: str, new: str, check: Callable[[Path], list[str]]
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".build", ".terraform"))
    assert check(copy) == [], "the unmodified copy must pass"
    target = copy / relpath
    text = target.read_text()
    assert old in text, "the text to change is gone; update the mutation"
    target.write_text(text.replace(old, new, 1))
    assert check(copy), f"{check.__name__} did not notice"
