"""Static invariants of the Terraform deployment (terraform/), checked without Terraform.

Every ``check_*`` function takes the Terraform directory and returns the list of
problems it found (empty when the invariant holds), so the same checks run against the
real tree and against a broken copy: each mutation test below breaks one invariant in a
copy of terraform/ and asserts that the matching check notices.

The .tf files are parsed with python-hcl2; expressions stay strings such as
``"${local.functions}"``, so the checks follow the references the configuration is
written with (``for_each = local.functions``, ``local.secrets``, ...) instead of
evaluating HCL.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

from shared.needs import NEED_SECRETS, OPTIONAL_NEEDS, Need
from shared.registry import FUNCTIONS, function_for_path, render_manifest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
FUNCTIONS_JSON = "functions.json"
# How main.tf reads the registry's generated file (the only accepted source of the list).
FUNCTIONS_FROM_JSON = '${jsondecode(file("${path.module}/functions.json")).functions}'

# Every secret setting of shared/config.py.
SECRET_ENV = frozenset(
    {
        "DATABASE_URL",
        "UPSTASH_REDIS_REST_TOKEN",
        "REDIS_URL",
        "AUTH_HS256_SECRET",
        "QSTASH_TOKEN",
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
        "AI_API_KEY",
        "CURSOR_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "FALLBACK_AI_API_KEY",
        "NOTICE_WEBHOOK_SECRET",
    }
)
# Development-only: production refuses to start with it, so it is never deployed.
NEVER_DEPLOYED = frozenset({"AUTH_HS256_SECRET"})
# Redis is reached over Upstash REST (which wins over REDIS_URL when both are set), so
# REDIS_URL is not deployed; if it ever is, it must be a secret like the others.
NOT_DEPLOYED = NEVER_DEPLOYED | {"REDIS_URL"}
DEPLOYED_SECRETS = SECRET_ENV - NOT_DEPLOYED

# Registry auth kinds that may be public at the network level, because the function
# authenticates every request in code; qstash/stripe only with their signature checks.
PUBLIC_AUTH = frozenset({"bearer", "none", "qstash", "stripe"})
SIGNATURE_AUTH = frozenset({"qstash", "stripe"})

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
MOUNTED_SECRETS = "${toset(local.function_secrets[each.key])}"
MOUNT_VERSION = '${local.mount_versions["${each.key}/${secret_environment_variables.key}"]}'
CI_WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
FUNCTION_SA_MEMBER = "serviceAccount:${google_service_account.fn[each.value.function].email}"
INVOKER_RESOURCES = (
    "google_cloud_run_service_iam_member",
    "google_cloud_run_service_iam_binding",
    "google_cloud_run_v2_service_iam_member",
    "google_cloud_run_v2_service_iam_binding",
    "google_cloudfunctions2_function_iam_member",
    "google_cloudfunctions2_function_iam_binding",
)
METRIC_EVENTS = (
    "limit_rejected",
    "provider_rate_limited",
    "provider_fallback",
    "circuit_state",
    "job_completed",
    "job_failed",
    "job_queued",
    "request_finished",
    "spend_anomaly",
)
# What SPEC §10 asks to alert on, as the metrics (and for_each keys) the alerts read.
ALERTED_METRICS = frozenset(
    {
        "http_5xx",
        "requests",
        "provider_rate_limited",
        "provider_fallbacks",
        "circuit_state",
        "jobs_finished",
        'job_latency["enqueue_to_start_ms"]',
        "spend_anomalies",
    }
)
# ...and what the dashboard charts: the alerts' signals plus admissions and rejections.
CHARTED_METRICS = ALERTED_METRICS | {"admissions", "limit_rejections"}
USER_METRIC_RE = re.compile(
    r'metric\.type=\\?"logging\.googleapis\.com/user/(\$\{[^}]*\}|[^"\\]*)\\?"'
)
METRIC_REF_RE = re.compile(r'^\$\{google_logging_metric\.(\w+)(\["(\w+)"\])?\.name\}$')
DASHBOARD_TEMPLATE_RE = re.compile(r'templatefile\("\$\{path\.module\}/([\w./-]+)", \{(.*)\}\)')
JOB_LATENCY_FIELDS = ("enqueue_to_complete_ms", "start_to_complete_ms", "enqueue_to_start_ms")

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


@dataclass
class Terraform:
    """The merged top-level blocks of every .tf file in one directory."""

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    # locals.functions as written (before functions.json is substituted for it).
    functions_expr: Any = None

    def resources_of(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


@functools.lru_cache(maxsize=256)
def _parse_hcl(text: str) -> dict[str, Any]:
    return dict(hcl2.loads(text, serialization_options=_OPTIONS))


def parse_hcl(text: str) -> dict[str, Any]:
    """python-hcl2's parse of ``text``: cached (the mutation tests parse the same files
    for every copy), and a copy, so a caller can never change the cache."""
    return copy.deepcopy(_parse_hcl(text))


def load_terraform(directory: Path) -> Terraform:
    """Parse every ``*.tf`` directly in ``directory`` (Terraform's own module scope)."""
    tf = Terraform()
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        tf.texts[path.name] = text
        doc = parse_hcl(text)
        for kind, target in (("resource", tf.resources), ("data", tf.data)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        target[(rtype, name)] = body
        for block in doc.get("locals", []):
            tf.locals.update(block)
        for block in doc.get("variable", []):
            tf.variables.update(block)
        tf.terraform.extend(doc.get("terraform", []))
    # locals.functions reads functions.json: the checks see the table Terraform would.
    tf.functions_expr = tf.locals.get("functions")
    if tf.functions_expr == FUNCTIONS_FROM_JSON and (directory / FUNCTIONS_JSON).is_file():
        manifest = json.loads((directory / FUNCTIONS_JSON).read_text(encoding="utf-8"))
        tf.locals["functions"] = manifest.get("functions")
    return tf


def load_tfvars(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)


def first(block: Any) -> dict[str, Any]:
    """A nested block (parsed as a one-element list) or an empty dict."""
    if isinstance(block, list):
        return block[0] if block else {}
    return block if isinstance(block, dict) else {}


def dynamic_blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [d[name] for d in body.get("dynamic", []) if name in d]


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair at any depth of a parsed block."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key, inner
            yield from walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from walk(inner)


def ref(name: str) -> str:
    return "${" + name + "}"


def function_resource(tf: Terraform) -> tuple[str, dict[str, Any]] | None:
    functions = tf.resources_of("google_cloudfunctions2_function")
    if len(functions) != 1:
        return None
    return next(iter(functions.items()))


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


def ci_python_versions(workflow: Path = CI_WORKFLOW) -> list[str]:
    """Every python-version actions/setup-python installs in a workflow (YAML parser)."""
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    return [
        str(step["with"]["python-version"])
        for job in doc["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("actions/setup-python@")
    ]


def ci_python_runtime(workflow: Path = CI_WORKFLOW) -> str:
    """The Cloud Functions runtime of the one Python CI tests (3.11 -> python311)."""
    versions = set(ci_python_versions(workflow))
    if len(versions) != 1:
        return f"<CI tests {sorted(versions)}, not one version>"
    return "python" + versions.pop().replace(".", "")


def _pins_versions(tf: Terraform) -> bool:
    """local.mount_versions takes every non-database version from local.secret_versions."""
    return "local.secret_versions[g.secret]" in str(tf.locals.get("mount_versions", ""))


def check_functions(directory: Path) -> list[str]:
    """One function per registry entry with the registry's module/entry point/auth/hot."""
    tf = load_terraform(directory)
    problems: list[str] = []
    table = tf.locals.get("functions")
    if not isinstance(table, dict):
        return ["locals.functions (function name => settings) is missing"]
    registry = {spec.name: spec for spec in FUNCTIONS}
    for name in sorted(registry.keys() - table.keys()):
        problems.append(f"registry function {name!r} has no entry in locals.functions")
    for name in sorted(table.keys() - registry.keys()):
        problems.append(f"locals.functions has {name!r}, which the registry does not know")
    for name in sorted(registry.keys() & table.keys()):
        spec, entry = registry[name], table[name]
        for key, expected in (
            ("module", spec.module),
            ("entry_point", spec.entry_point),
            ("auth", spec.auth),
            ("hot", spec.hot),
        ):
            if entry.get(key) != expected:
                problems.append(f"{name}: {key} is {entry.get(key)!r}, registry says {expected!r}")
        for key in ("memory", "timeout_s", "max_instances", "concurrency"):
            if key not in entry:
                problems.append(f"{name}: locals.functions entry has no {key}")

    found = function_resource(tf)
    if found is None:
        return [*problems, "expected exactly one google_cloudfunctions2_function (for_each)"]
    _, fn = found
    build, service = first(fn.get("build_config")), first(fn.get("service_config"))
    expectations = {
        "for_each": (fn.get("for_each"), ref("local.functions")),
        "runtime": (build.get("runtime"), ci_python_runtime()),
        "entry_point": (build.get("entry_point"), ref("each.value.entry_point")),
        "min_instance_count": (
            service.get("min_instance_count"),
            ref("each.value.hot ? var.hot_min_instances : 0"),
        ),
        "service_account_email": (
            service.get("service_account_email"),
            ref("google_service_account.fn[each.key].email"),
        ),
    }
    for key, (actual, expected) in expectations.items():
        if actual != expected:
            problems.append(f"function resource: {key} is {actual!r}, expected {expected!r}")

    storage = first(first(build.get("source")).get("storage_source"))
    obj_ref = re.fullmatch(
        r"\$\{google_storage_bucket_object\.(\w+)\[each\.key\]\.name\}", str(storage.get("object"))
    )
    if obj_ref is None:
        problems.append("build source object must be a per-function google_storage_bucket_object")
    else:
        obj = tf.resources.get(("google_storage_bucket_object", obj_ref.group(1)), {})
        zip_path = "${local.package_dir}/${each.key}.zip"
        if obj.get("source") != zip_path:
            problems.append(f"source object must upload the zip make package built ({zip_path})")
        if f'filesha256("{zip_path}")' not in str(obj.get("name")):
            problems.append("source object name must contain the zip's filesha256 (redeploys)")
    return problems


def check_registry_source(directory: Path) -> list[str]:
    """Item 7: the function list comes from the registry only (functions.json, in sync);
    Terraform builds no zip of its own (make package is the one file list)."""
    tf = load_terraform(directory)
    problems: list[str] = []
    if tf.functions_expr != FUNCTIONS_FROM_JSON:
        problems.append(f"locals.functions must be {FUNCTIONS_FROM_JSON}, not a copy")
    path = directory / FUNCTIONS_JSON
    if not path.is_file():
        problems.append(f"{FUNCTIONS_JSON} is missing (make functions-json)")
    elif path.read_text(encoding="utf-8") != render_manifest():
        problems.append(f"{FUNCTIONS_JSON} differs from shared/registry.py: make functions-json")
    if tf.data.get(("archive_file", "source")) or tf.resources_of("archive_file"):
        problems.append("Terraform must not zip sources itself; upload make package's zips")
    for text in tf.texts.values():
        if "templatefile(" in text and "main.py" in text:
            problems.append("main.py is rendered by scripts/package.py, not by Terraform")
    return problems


def _with_locals(tf: Terraform, text: str, depth: int = 3) -> str:
    """``text`` followed by the locals it references, transitively (a few levels)."""
    seen: set[str] = set()
    for _ in range(depth):
        for name in set(re.findall(r"local\.(\w+)", text)) - seen:
            seen.add(name)
            text += " " + str(tf.locals.get(name, ""))
    return text


def check_secrets(directory: Path) -> list[str]:
    """Every secret: a Secret Manager secret, mounted pinned, readable by the functions only."""
    tf = load_terraform(directory)
    problems: list[str] = []
    table = tf.locals.get("secrets")
    if not isinstance(table, dict):
        return ["locals.secrets (env var name => settings) is missing"]
    for name in sorted(DEPLOYED_SECRETS - table.keys()):
        problems.append(f"secret {name} has no entry in locals.secrets")
    for name in sorted(NOT_DEPLOYED & table.keys()):
        problems.append(f"{name} must not be deployed")
    for name in sorted(table.keys() - SECRET_ENV):
        problems.append(
            f"locals.secrets has {name}, which shared/config.py does not treat as secret"
        )

    secrets = tf.resources_of("google_secret_manager_secret")
    if secrets.get("app", {}).get("for_each") != ref("local.secrets"):
        problems.append("google_secret_manager_secret.app must be for_each = local.secrets")
    for name, body in secrets.items():
        if "replication" not in body:
            problems.append(f"google_secret_manager_secret.{name} has no replication block")

    found = function_resource(tf)
    if found is None:
        return [*problems, "expected exactly one google_cloudfunctions2_function (for_each)"]
    service = first(found[1].get("service_config"))
    mounts = dynamic_blocks(service, "secret_environment_variables")
    if len(mounts) != 1 or mounts[0].get("for_each") != MOUNTED_SECRETS:
        problems.append(
            f"secret_environment_variables must be one dynamic block over {MOUNTED_SECRETS}"
        )
    else:
        content = first(mounts[0].get("content"))
        if content.get("key") != ref("secret_environment_variables.key"):
            problems.append("mounted secret env var key must be the locals.secrets key")
        if content.get("version") != MOUNT_VERSION or not _pins_versions(tf):
            problems.append(
                "mounted secret version must come from local.mount_versions, built from"
                " local.secret_versions (pinned)"
            )
    for key, value in walk(tf.resources):
        if key == "version" and str(value).strip().lower() == "latest":
            problems.append('a secret version is "latest"; pin a number')
    for key, value in walk(tf.locals.get("secret_versions", {})):
        if "latest" in str(value):
            problems.append('local.secret_versions mentions "latest"')

    accessors = [
        (rtype, name, body)
        for (rtype, name), body in tf.resources.items()
        if body.get("role") == ACCESSOR_ROLE
        or ACCESSOR_ROLE in str(body.get("roles", ""))
        or ACCESSOR_ROLE in _with_locals(tf, str(body.get("for_each", "")))
    ]
    per_secret = [
        (rtype, name, body)
        for rtype, name, body in accessors
        if rtype == "google_secret_manager_secret_iam_member"
    ]
    for rtype, name, _ in accessors:
        if rtype != "google_secret_manager_secret_iam_member":
            problems.append(f"{rtype}.{name} grants {ACCESSOR_ROLE}; grant it per secret only")
    functions_bindings = [b for b in per_secret if b[2].get("member") != MIGRATE_MEMBER]
    if len(functions_bindings) != 1:
        problems.append(
            f"expected one per-secret accessor binding, found {len(functions_bindings)}"
        )
    for _, name, body in functions_bindings:
        if body.get("for_each") != ref("local.secret_grants"):
            problems.append(f"accessor binding {name} must be one per function and secret")
        if body.get("member") != FUNCTION_SA_MEMBER:
            problems.append(f"accessor binding {name} must name the function's own account")
    for fname, entry in sorted(tf.locals.get("functions", {}).items()):
        optional = {s for names in entry.get("optional_secrets", {}).values() for s in names}
        for secret in sorted((set(entry.get("secrets", [])) | optional) - table.keys()):
            problems.append(f"{fname} mounts {secret}, which has no Secret Manager secret")
    return problems


def check_plain_environment(directory: Path) -> list[str]:
    """Plain environment variables: configuration only, production settings, no secrets."""
    tf = load_terraform(directory)
    problems: list[str] = []
    found = function_resource(tf)
    if found is None:
        return ["expected exactly one google_cloudfunctions2_function (for_each)"]
    service = first(found[1].get("service_config"))
    env_ref = re.fullmatch(
        r"\$\{merge\(local\.(\w+), local\.function_env\[each\.key\],"
        r" \{APP_FUNCTION = each\.key\}\)\}",
        str(service.get("environment_variables")),
    )
    if env_ref is None:
        return [
            "environment_variables must be merge(local.<map>, local.function_env[each.key],"
            " { APP_FUNCTION = each.key }) (one statically checkable map, the optional"
            " needs' settings, plus the function's registry name)"
        ]
    need_env = tf.locals.get("need_env")
    if not isinstance(need_env, dict):
        return ["local.need_env (optional need => its plain settings) is not a map literal"]
    for name in sorted(n for n in SECRET_ENV if n in str(need_env)):
        problems.append(f"secret {name} is a plain setting of an optional need")
    env = tf.locals.get(env_ref.group(1))
    if not isinstance(env, dict):
        return [f"local.{env_ref.group(1)} is not a map literal"]
    for name in sorted(SECRET_ENV & env.keys()):
        problems.append(f"secret {name} is a plain environment variable")
    for key, value in walk(tf.resources):
        if key == "environment_variables" and isinstance(value, dict):
            for name in sorted(SECRET_ENV & value.keys()):
                problems.append(f"secret {name} is a plain environment variable")
    for name, expected in (
        ("APP_ENV", "production"),
        ("QUEUE_BACKEND", "qstash"),
        ("AI_PROVIDER", "minimax"),
    ):
        if env.get(name) != expected:
            problems.append(f"{name} must be {expected!r}, is {env.get(name)!r}")
    for name in ("WORKER_URL", "UPSTASH_REDIS_REST_URL", "AUTH_JWKS_URL", "AUTH_ISSUER"):
        if name not in env:
            problems.append(f"{name} is not set")
    return problems


def _invoker_targets(tf: Terraform, body: dict[str, Any]) -> list[str] | None:
    """The registry names a Cloud Run IAM binding applies to, or None if unreadable."""
    service = str(body.get("service", ""))
    single = re.fullmatch(
        r"\$\{google_cloudfunctions2_function\.\w+\[\"([\w-]+)\"\]\.service_config\[0\]\.service\}",
        service,
    )
    if single:
        return [single.group(1)]
    if service != "${google_cloudfunctions2_function.fn[each.key].service_config[0].service}":
        return None
    for_each = str(body.get("for_each", ""))
    if for_each == ref("local.functions"):
        return sorted(tf.locals.get("functions", {}))
    local = re.fullmatch(r"\$\{local\.(\w+)\}", for_each)
    expr = str(tf.locals.get(local.group(1), "")) if local else for_each
    allowed = re.fullmatch(
        r"\$\{\{for (\w+), (\w+) in local\.functions : \1 => \2 "
        r"if (?:var\.public_invokers && )?contains\(\[([^\]]*)\], \2\.auth\)\}\}",
        expr,
    )
    if allowed is None:
        return None
    auths = {a.strip().strip('"') for a in allowed.group(3).split(",")}
    return sorted(n for n, f in tf.locals.get("functions", {}).items() if f.get("auth") in auths)


def check_public_invokers(directory: Path) -> list[str]:
    """allUsers may invoke only functions that authenticate every request in code."""
    tf = load_terraform(directory)
    problems: list[str] = []
    registry = {spec.name: spec for spec in FUNCTIONS}
    public: set[str] = set()
    for (rtype, name), body in tf.resources.items():
        if "cloudfunctions.invoker" in str(body.get("role", "")):
            problems.append(
                f"{rtype}.{name}: the cloudfunctions invoker role has no effect on gen2"
            )
        members = [body.get("member")] if "member" in body else list(body.get("members", []))
        if not any(m in ("allUsers", "allAuthenticatedUsers") for m in members):
            continue
        if rtype not in INVOKER_RESOURCES or body.get("role") != "roles/run.invoker":
            problems.append(f"{rtype}.{name}: public grant outside a run.invoker binding")
            continue
        targets = _invoker_targets(tf, body)
        if targets is None:
            problems.append(f"{rtype}.{name}: cannot tell which functions it makes public")
            continue
        if not _preceded_by_comment(tf, rtype, name):
            problems.append(f"{rtype}.{name}: say in a comment how its callers authenticate")
        for target in targets:
            public.add(target)
            spec = registry.get(target)
            if spec is None:
                problems.append(f"{rtype}.{name} makes unknown function {target!r} public")
            elif spec.auth not in PUBLIC_AUTH:
                problems.append(f"{target} (auth {spec.auth!r}) must not be public")
    # A function deployed as signature-checked (auth qstash/stripe in locals.functions) is
    # public only together with that check, which the registry must declare too.
    table = tf.locals.get("functions", {})
    for target in sorted(public & registry.keys()):
        deployed_auth = table.get(target, {}).get("auth")
        if deployed_auth in SIGNATURE_AUTH and registry[target].auth != deployed_auth:
            problems.append(
                f"{target} is public as {deployed_auth!r}-signed, registry says "
                f"{registry[target].auth!r}"
            )
    return problems


def _preceded_by_comment(tf: Terraform, rtype: str, name: str) -> bool:
    header = re.compile(rf'^resource\s+"{rtype}"\s+"{re.escape(name)}"\s*\{{', re.M)
    for text in tf.texts.values():
        match = header.search(text)
        if match:
            before = text[: match.start()].rstrip("\n").splitlines()
            return bool(before) and before[-1].lstrip().startswith("#")
    return False


def _metrics_by_event(tf: Terraform) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for body in tf.resources_of("google_logging_metric").values():
        for event in re.findall(r'jsonPayload\.event=\\?"(\w+)\\?"', str(body.get("filter", ""))):
            found.setdefault(event, []).append(body)
    return found


def _value_extractors(tf: Terraform, body: dict[str, Any]) -> set[str]:
    extractor = str(body.get("value_extractor", ""))
    local = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("for_each", "")))
    keys = list(tf.locals.get(local.group(1), {})) if local else []
    if "${each.key}" in extractor and keys:
        return {extractor.replace("${each.key}", key) for key in keys}
    return {extractor} if extractor else set()


def check_log_metrics(directory: Path) -> list[str]:
    """Log-based metrics for the named events, and alert policies on 5xx and provider 429s."""
    tf = load_terraform(directory)
    problems: list[str] = []
    by_event = _metrics_by_event(tf)
    for event in METRIC_EVENTS:
        if event not in by_event:
            problems.append(f"no log-based metric filters on jsonPayload.event={event}")
    rejections = by_event.get("limit_rejected", [])
    if not any(
        first(m.get("label_extractors")).get("code") == "EXTRACT(jsonPayload.code)"
        for m in rejections
    ):
        problems.append("limit_rejected metric must extract the label code from jsonPayload.code")
    job_extractors = set().union(
        *(_value_extractors(tf, m) for m in by_event.get("job_completed", []))
    )
    for name in JOB_LATENCY_FIELDS:
        if f"EXTRACT(jsonPayload.{name})" not in job_extractors:
            problems.append(f"no job_completed distribution over jsonPayload.{name}")
    request_extractors = set().union(
        *(_value_extractors(tf, m) for m in by_event.get("request_finished", []))
    )
    if "EXTRACT(jsonPayload.latency_ms)" not in request_extractors:
        problems.append("no request latency distribution over jsonPayload.latency_ms")
    for name, body in tf.resources_of("google_logging_metric").items():
        if "value_extractor" in body:
            descriptor = first(body.get("metric_descriptor"))
            if descriptor.get("value_type") != "DISTRIBUTION":
                problems.append(f"google_logging_metric.{name}: value_type must be DISTRIBUTION")
            if "exponential_buckets" not in first(body.get("bucket_options")):
                problems.append(f"google_logging_metric.{name}: use exponential buckets")
    alerts = str(tf.resources_of("google_monitoring_alert_policy"))
    for metric in (
        "http_5xx",
        "provider_rate_limited",
        "provider_fallbacks",
        "circuit_state",
        "jobs_finished",
        "spend_anomalies",
    ):
        if f"google_logging_metric.{metric}.name" not in alerts:
            problems.append(f"no alert policy on google_logging_metric.{metric}")
    return problems


def _defined_metric(tf: Terraform, reference: str) -> tuple[str | None, str | None]:
    """(metric, problem) for ``${google_logging_metric.NAME[\"KEY\"].name}``."""
    match = METRIC_REF_RE.match(reference)
    if match is None:
        return None, f"{reference!r} is not a google_logging_metric defined here"
    name, _, key = match.groups()
    body = tf.resources.get(("google_logging_metric", name))
    if body is None:
        return None, f"google_logging_metric.{name} is not defined"
    if key is not None:
        local = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("for_each", "")))
        if local is None or key not in tf.locals.get(local.group(1), {}):
            return None, f'google_logging_metric.{name}["{key}"] is not one of its for_each keys'
        return f'{name}["{key}"]', None
    if "for_each" in body:
        return None, f"google_logging_metric.{name} has for_each: name one instance"
    return name, None


def check_alert_metrics(directory: Path) -> list[str]:
    """Every alert condition reads only metrics Terraform defines; SPEC §10's are covered."""
    tf = load_terraform(directory)
    problems: list[str] = []
    alerted: set[str] = set()
    for name, body in tf.resources_of("google_monitoring_alert_policy").items():
        conditions = body.get("conditions", [])
        if not conditions:
            problems.append(f"alert {name} has no condition")
        for condition in conditions:
            threshold = first(condition.get("condition_threshold"))
            filters = [threshold.get("filter"), threshold.get("denominator_filter")]
            if not threshold.get("filter"):
                problems.append(f"alert {name}: a condition without a threshold filter")
            for text in filter(None, filters):
                types = USER_METRIC_RE.findall(str(text))
                if not types or str(text).count("metric.type=") != len(types):
                    problems.append(f"alert {name}: filter reads a metric not defined here")
                for reference in types:
                    metric, problem = _defined_metric(tf, reference)
                    if problem:
                        problems.append(f"alert {name}: {problem}")
                    if metric:
                        alerted.add(metric)
    for missing in sorted(ALERTED_METRICS - alerted):
        problems.append(f"no alert policy reads metric {missing}")
    return problems


def _dashboard_filters(doc: Any, where: str, problems: list[str]) -> list[tuple[str, str]]:
    """(chart title, filter) of every data set, checking the shape the charts rely on."""
    layout = doc.get("mosaicLayout") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("displayName"), str):
        problems.append(f"{where}: no displayName")
    if not isinstance(layout, dict) or not isinstance(layout.get("columns"), int):
        problems.append(f"{where}: mosaicLayout.columns missing")
        return []
    tiles = layout.get("tiles")
    if not isinstance(tiles, list) or not tiles:
        problems.append(f"{where}: mosaicLayout.tiles is empty")
        return []
    found: list[tuple[str, str]] = []
    for i, tile in enumerate(tiles):
        widget = tile.get("widget", {}) if isinstance(tile, dict) else {}
        title = widget.get("title")
        sizes = [tile.get(k, 0) for k in ("xPos", "yPos", "width", "height")]
        if not all(isinstance(v, int) and v >= 0 for v in sizes) or not all(sizes[2:]):
            problems.append(f"{where}: tile {i} needs integer xPos/yPos/width/height")
        elif sizes[0] + sizes[2] > layout["columns"]:
            problems.append(f"{where}: tile {i} is wider than the layout")
        data_sets = widget.get("xyChart", {}).get("dataSets")
        if not isinstance(title, str) or not isinstance(data_sets, list) or not data_sets:
            problems.append(f"{where}: tile {i} must be a titled xyChart with data sets")
            continue
        for data_set in data_sets:
            query = data_set.get("timeSeriesQuery", {})
            plain = query.get("timeSeriesFilter")
            ratio = query.get("timeSeriesFilterRatio")
            parts = (
                [plain]
                if plain is not None and ratio is None
                else [ratio.get("numerator"), ratio.get("denominator")]
                if isinstance(ratio, dict) and plain is None
                else []
            )
            if not parts or not all(isinstance(p, dict) and p.get("filter") for p in parts):
                problems.append(f"{where}: {title!r} needs timeSeriesFilter(Ratio) with filters")
                continue
            for part in parts:
                if "alignmentPeriod" not in part.get("aggregation", {}):
                    problems.append(f"{where}: {title!r} has no aggregation.alignmentPeriod")
                found.append((title, part["filter"]))
    return found


def check_dashboard(directory: Path) -> list[str]:
    """One dashboard; its JSON parses, has the shape below, charts only defined metrics,
    and charts SPEC §10's signals plus admissions and rejections by code."""
    tf = load_terraform(directory)
    dashboards = tf.resources_of("google_monitoring_dashboard")
    if len(dashboards) != 1:
        return [f"expected one google_monitoring_dashboard, found {len(dashboards)}"]
    name, body = next(iter(dashboards.items()))
    call = DASHBOARD_TEMPLATE_RE.search(str(body.get("dashboard_json", "")))
    if call is None:
        return [f"dashboard {name}: dashboard_json must be templatefile(path.module/..., vars)"]
    template = directory / call.group(1)
    local = re.search(r"metrics = local\.(\w+)", call.group(2))
    if not template.is_file() or local is None:
        return [f"dashboard {name}: template {call.group(1)} or its metrics map is missing"]
    problems: list[str] = []
    metric_names: dict[str, str] = {}
    for key, reference in tf.locals.get(local.group(1), {}).items():
        metric, problem = _defined_metric(tf, str(reference))
        if problem:
            problems.append(f"local.{local.group(1)}.{key}: {problem}")
        if metric:
            metric_names[key] = metric
    text = template.read_text(encoding="utf-8")

    def render(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr == "environment":
            return "staging"
        key = expr.removeprefix("metrics.")
        if expr.startswith("metrics.") and key in metric_names:
            return f"metric:{key}"
        problems.append(f"{template.name}: ${{{expr}}} is not a defined metric or variable")
        return "undefined"

    try:
        doc = json.loads(re.sub(r"\$\{([^}]*)\}", render, text))
    except json.JSONDecodeError as exc:
        return [*problems, f"{template.name}: not valid JSON ({exc})"]
    charted: set[str] = set()
    for title, text_filter in _dashboard_filters(doc, template.name, problems):
        types = USER_METRIC_RE.findall(text_filter)
        if len(types) != 1 or not types[0].startswith("metric:"):
            problems.append(f"{template.name}: {title!r} must read one metric defined here")
            continue
        charted.add(metric_names[types[0].removeprefix("metric:")])
    for missing in sorted(CHARTED_METRICS - charted):
        problems.append(f"the dashboard has no chart of metric {missing}")
    by_code = [
        ds
        for tile in doc.get("mosaicLayout", {}).get("tiles", [])
        for ds in tile.get("widget", {}).get("xyChart", {}).get("dataSets", [])
        if "limit_rejections" in json.dumps(ds)
        and 'metric.label.\\"code\\"' in json.dumps(ds.get("timeSeriesQuery", {}))
    ]
    if not by_code:
        problems.append("the dashboard must chart rejections grouped by metric.label.code")
    return problems


def check_metric_events_emitted(directory: Path, root: Path = ROOT) -> list[str]:
    """Every event a log-based metric counts is one the code logs (log_event in shared/)."""
    tf = load_terraform(directory)
    emitted: set[str] = set()
    for path in (root / "shared").rglob("*.py"):
        emitted |= set(re.findall(r'log_event\(\s*_log,\s*"(\w+)"', path.read_text()))
        emitted |= set(re.findall(r'"event": "(\w+)"', path.read_text()))
    return [
        f"a log-based metric counts event {event!r}, which no code in shared/ logs"
        for event in sorted(_metrics_by_event(tf).keys() - emitted)
    ]


# ---------------------------------------------------------------------------------------
# Issue 12: a first apply on a fresh project (items 1-6; item 7 is check_registry_source)
# ---------------------------------------------------------------------------------------

BUILD_ROLES = frozenset({"roles/logging.logWriter", "roles/storage.objectViewer"})
# Never project-wide for the build account: it writes images to one repository only.
BUILD_UNSCOPED_ROLES = frozenset({"roles/artifactregistry.writer", "roles/storage.objectAdmin"})
BUILD_MEMBER = "serviceAccount:${google_service_account.build.email}"
MIGRATE_MEMBER = "serviceAccount:${google_service_account.migrate.email}"
OTHER_MEMBERS = frozenset({BUILD_MEMBER, MIGRATE_MEMBER})


def _duration_s(value: Any) -> int:
    match = re.fullmatch(r"(\d+)([smh])", str(value))
    if match is None:
        return 0
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def _roles_of(tf: Terraform, body: dict[str, Any]) -> set[str]:
    """Roles a google_project_iam_member grants (a literal role or a for_each over a set)."""
    if body.get("role") and "each." not in str(body["role"]):
        return {str(body["role"])}
    return set(re.findall(r'"(roles/[\w.]+)"', _with_locals(tf, str(body.get("for_each", "")))))


def _sleeps_before(tf: Terraform, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The time_sleep resources named in a resource's depends_on."""
    sleeps = tf.resources_of("time_sleep")
    named = {
        m.group(1)
        for d in body.get("depends_on", [])
        if (m := re.fullmatch(r"\$\{time_sleep\.(\w+)\}", str(d)))
    }
    return {name: sleeps[name] for name in named if name in sleeps}


def check_build_identity(directory: Path) -> list[str]:
    """Item 1: the build account holds the builder roles project-wide, and every function
    waits (time_sleep >= 60 s) for those grants before it is built."""
    tf = load_terraform(directory)
    problems: list[str] = []
    found = function_resource(tf)
    if found is None:
        return ["expected exactly one google_cloudfunctions2_function (for_each)"]
    fn = found[1]
    if first(fn.get("build_config")).get("service_account") != ref(
        "google_service_account.build.id"
    ):
        problems.append("build_config.service_account must be google_service_account.build")
    grants = {
        name: body
        for name, body in tf.resources_of("google_project_iam_member").items()
        if body.get("member") == BUILD_MEMBER
    }
    granted = set().union(*(_roles_of(tf, b) for b in grants.values())) if grants else set()
    for role in sorted(BUILD_ROLES - granted):
        problems.append(f"the build account lacks project-level {role} (provider issue 20571)")
    for role in sorted(BUILD_UNSCOPED_ROLES & granted):
        problems.append(f"the build account holds {role} project-wide; scope it")
    for name, body in grants.items():
        if "roles/storage.objectViewer" in _roles_of(tf, body) and not body.get("condition"):
            problems.append(
                f"google_project_iam_member.{name}: the build account's storage read must be"
                " limited to the sources buckets (condition)"
            )
    sleeps = _sleeps_before(tf, fn)
    waited = [
        name
        for name, sleep in sleeps.items()
        if _duration_s(sleep.get("create_duration")) >= 60
        and all(
            ref(f"google_project_iam_member.{g}") in sleep.get("depends_on", []) for g in grants
        )
    ]
    if not grants or not waited:
        problems.append(
            "the functions must depends_on a time_sleep (>= 60s) that depends on every "
            "build-account grant"
        )
    return problems


def check_alert_wait(directory: Path) -> list[str]:
    """Item 2: alert policies wait (>= 10 min) after every log-based metric exists."""
    tf = load_terraform(directory)
    problems: list[str] = []
    metrics = sorted(tf.resources_of("google_logging_metric"))
    for name, policy in sorted(tf.resources_of("google_monitoring_alert_policy").items()):
        sleeps = _sleeps_before(tf, policy)
        ok = [
            s
            for s in sleeps.values()
            if _duration_s(s.get("create_duration")) >= 600
            and all(f"google_logging_metric.{m}" in str(s) for m in metrics)
        ]
        if not ok:
            problems.append(
                f"google_monitoring_alert_policy.{name} must depends_on a time_sleep (>= 600s) "
                f"that follows every google_logging_metric ({', '.join(metrics)})"
            )
    return problems


def check_fresh_project_order(directory: Path) -> list[str]:
    """Item 3: nothing is read at plan time before its API is on; service accounts wait
    for iam.googleapis.com; the network is created, not assumed."""
    tf = load_terraform(directory)
    problems: list[str] = []
    services = ref("google_project_service.enabled")
    apis = str(tf.locals.get("required_apis", ""))
    for api in ("compute.googleapis.com", "iam.googleapis.com"):
        if api not in apis:
            problems.append(f"{api} is not in locals.required_apis")
    for (dtype, name), body in sorted(tf.data.items()):
        if dtype == "google_project":
            continue  # the project itself; Resource Manager is on in every project
        if services not in body.get("depends_on", []):
            problems.append(f"data.{dtype}.{name} is read before the APIs are enabled")
    if not tf.resources_of("google_compute_network") and tf.resources_of(
        "google_sql_database_instance"
    ):
        problems.append("the VPC network must be created (google_compute_network), not assumed")
    for rtype in ("google_service_account", "google_compute_network"):
        for name, body in sorted(tf.resources_of(rtype).items()):
            if services not in body.get("depends_on", []):
                problems.append(f"{rtype}.{name} must depends_on google_project_service.enabled")
    return problems


def check_private_service_access(directory: Path) -> list[str]:
    """Item 4: the peering survives an existing connection and a destroy."""
    tf = load_terraform(directory)
    problems: list[str] = []
    connections = tf.resources_of("google_service_networking_connection")
    if not connections:
        problems.append("no google_service_networking_connection")
    for name, body in sorted(connections.items()):
        if body.get("update_on_creation_fail") is not True:
            problems.append(
                f"google_service_networking_connection.{name}: update_on_creation_fail = true"
            )
        if body.get("deletion_policy") != "ABANDON":
            problems.append(
                f'google_service_networking_connection.{name}: deletion_policy = "ABANDON"'
            )
    return problems


def check_notification_channels(directory: Path) -> list[str]:
    """Item 5: production's channels are a required input, never a tfvars placeholder."""
    tf = load_terraform(directory)
    problems: list[str] = []
    var = tf.variables.get("alert_notification_channels")
    if var is None:
        return ["variable alert_notification_channels is missing"]
    if "default" in var:
        problems.append("alert_notification_channels must be required (no default)")
    conditions = " ".join(str(v.get("condition", "")) for v in var.get("validation", []))
    if "notificationChannels" not in conditions:
        problems.append("alert_notification_channels must validate the channel id format")
    if (
        "var.environment" not in conditions
        or "length(var.alert_notification_channels)" not in conditions
    ):
        problems.append("alert_notification_channels must refuse an empty list in production")
    for path in sorted((directory / "environments").glob("*.tfvars")):
        values = load_tfvars(path)
        if values.get("environment") == "production" and "alert_notification_channels" in values:
            problems.append(
                f"{path.name} sets alert_notification_channels (use the deploy environment)"
            )
    return problems


def check_least_privilege(directory: Path) -> list[str]:
    """Item 6: each function runs as its own account and mounts only its own secrets."""
    tf = load_terraform(directory)
    problems: list[str] = []
    found = function_resource(tf)
    if found is None:
        return ["expected exactly one google_cloudfunctions2_function (for_each)"]
    service = first(found[1].get("service_config"))
    accounts = {
        n: b
        for n, b in tf.resources_of("google_service_account").items()
        if b.get("for_each") == ref("local.functions")
    }
    if len(accounts) != 1:
        problems.append("expected one google_service_account with for_each = local.functions")
    expected_sa = {ref(f"google_service_account.{n}[each.key].email") for n in accounts}
    if service.get("service_account_email") not in expected_sa:
        problems.append("each function must run as its own service account ([each.key])")
    mounts = dynamic_blocks(service, "secret_environment_variables")
    if [m.get("for_each") for m in mounts] != [MOUNTED_SECRETS]:
        problems.append(f"a function must mount only its own secrets ({MOUNTED_SECRETS})")
    if "APP_FUNCTION = each.key" not in str(service.get("environment_variables")):
        problems.append("APP_FUNCTION = each.key must be set (per-function start-up checks)")
    per_function = re.compile(
        r"serviceAccount:\$\{google_service_account\.\w+\[each\.value\.function\]\.email\}"
    )
    for name, body in sorted(tf.resources_of("google_project_iam_member").items()):
        member = str(body.get("member", ""))
        runtime = "google_service_account." in member and member not in OTHER_MEMBERS
        if runtime and not per_function.fullmatch(member):
            problems.append(
                f"google_project_iam_member.{name}: runtime roles go to each function's account"
            )
    registry = {spec.name: spec for spec in FUNCTIONS}
    for fname, entry in sorted(tf.locals.get("functions", {}).items()):
        spec = registry.get(fname)
        if spec is not None and sorted(entry.get("secrets", [])) != list(spec.secrets):
            problems.append(
                f"{fname}: mounts {entry.get('secrets')}, registry needs {list(spec.secrets)}"
            )
        optional = {k: list(v) for k, v in spec.optional_secrets.items()} if spec else {}
        if spec is not None and entry.get("optional_secrets", {}) != optional:
            problems.append(f"{fname}: optional secrets differ from the registry's {optional}")
    return problems


# The plain settings each optional need sets (shared/config.py), only while it is on.
OPTIONAL_NEED_ENV: dict[str, frozenset[str]] = {
    "ai_fallback": frozenset(
        {
            "FALLBACK_AI_BASE_URL",
            "FALLBACK_AI_MODEL",
            "FALLBACK_AI_PROVIDER",
            "FALLBACK_AI_PRICE_IN",
            "FALLBACK_AI_PRICE_OUT",
            "FALLBACK_RESERVE_S",
            "CIRCUIT_FAILURES",
            "CIRCUIT_WINDOW_S",
            "CIRCUIT_COOLDOWN_S",
        }
    ),
    "notices": frozenset({"NOTICE_WEBHOOK_URL"}),
}


def check_optional_needs(directory: Path) -> list[str]:
    """The fallback provider and the notice webhook: their settings belong to their
    optional need only (never to every function), and their secrets are optional."""
    tf = load_terraform(directory)
    problems: list[str] = []
    wanted = {n.value for n in OPTIONAL_NEEDS}
    switches = tf.locals.get("optional_needs_on")
    if not isinstance(switches, dict) or set(switches) != wanted:
        problems.append(f"local.optional_needs_on must switch exactly {sorted(wanted)}")
    need_env = tf.locals.get("need_env")
    if not isinstance(need_env, dict) or set(need_env) != wanted:
        return [*problems, f"local.need_env must have exactly {sorted(wanted)}"]
    for need, names in OPTIONAL_NEED_ENV.items():
        for name in sorted(n for n in names if n not in str(need_env[need])):
            problems.append(f"local.need_env.{need} does not set {name}")
    plain = str(tf.locals.get("plain_env", {}))
    for name in sorted(n for names in OPTIONAL_NEED_ENV.values() for n in names if n in plain):
        problems.append(f"{name} is in plain_env (every function); it belongs to its need")
    table = tf.locals.get("secrets", {})
    for need in sorted(OPTIONAL_NEEDS):
        for secret in NEED_SECRETS[need]:
            always = any(secret in NEED_SECRETS[n] for n in set(Need) - OPTIONAL_NEEDS)
            if not always and table.get(secret, {}).get("need") != need.value:
                problems.append(f'locals.secrets.{secret} must say need = "{need.value}"')
    switched = _with_locals(tf, str(tf.locals.get("function_secrets", "")), depth=1)
    if "optional_secrets" not in switched or "local.optional_needs_on" not in switched:
        problems.append("local.function_secrets must add optional_secrets only while on")
    if "local.optional_needs_on" not in str(tf.locals.get("function_env", "")):
        problems.append("local.function_env must add a need's settings only while it is on")
    if "local.optional_needs_on" not in str(tf.locals.get("out_of_band_secrets", "")):
        problems.append("out_of_band_secrets must not require versions of a feature that is off")
    return problems


def check_providers(directory: Path) -> list[str]:
    tf = load_terraform(directory)
    required: dict[str, Any] = {}
    for block in tf.terraform:
        for providers in block.get("required_providers", []):
            required.update(providers)
    problems = []
    for name, source in (
        ("google", "hashicorp/google"),
        ("google-beta", "hashicorp/google-beta"),
        ("upstash", "upstash/upstash"),
        ("time", "hashicorp/time"),
    ):
        spec = required.get(name, {})
        if spec.get("source") != source or not spec.get("version"):
            problems.append(f"required_providers.{name} must be {source} with a version")
    return problems


def check_connection_budget(directory: Path) -> list[str]:
    """For each environment: sum(max instances) x pool + reserved <= max_connections."""
    tf = load_terraform(directory)
    problems: list[str] = []
    functions = tf.locals.get("functions", {})
    reserved = int(tf.locals.get("sql_reserved_connections", 0))
    defaults = {name: v.get("default") for name, v in tf.variables.items()}
    for path in sorted((directory / "environments").glob("*.tfvars")):
        values = {**defaults, **load_tfvars(path)}
        overrides = values.get("max_instances") or {}
        total = sum(int(overrides.get(n, f["max_instances"])) for n, f in functions.items())
        budget = total * int(values["db_pool_size"]) + reserved
        if values.get("use_cloud_sql") and budget > int(values["sql_max_connections"]):
            problems.append(f"{path.name}: {budget} connections > {values['sql_max_connections']}")
        if str(values.get("environment")) not in ("staging", "production"):
            problems.append(f"{path.name}: environment must be staging or production")
    return problems


def check_function_modules(root: Path) -> list[str]:
    """Each function zip holds only its own functions/ module: none may import another."""
    problems = []
    for path in sorted((root / "functions").glob("*.py")):
        for match in re.finditer(r"^\s*(?:from|import)\s+functions\.(\w+)", path.read_text(), re.M):
            if match.group(1) != path.stem:
                problems.append(f"functions/{path.name} imports functions.{match.group(1)}")
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "functions": check_functions,
    "registry_source": check_registry_source,
    "build_identity": check_build_identity,
    "alert_wait": check_alert_wait,
    "fresh_project_order": check_fresh_project_order,
    "private_service_access": check_private_service_access,
    "notification_channels": check_notification_channels,
    "least_privilege": check_least_privilege,
    "optional_needs": check_optional_needs,
    "secrets": check_secrets,
    "plain_environment": check_plain_environment,
    "public_invokers": check_public_invokers,
    "log_metrics": check_log_metrics,
    "alert_metrics": check_alert_metrics,
    "dashboard": check_dashboard,
    "metric_events_emitted": check_metric_events_emitted,
    "providers": check_providers,
    "connection_budget": check_connection_budget,
}


# ---------------------------------------------------------------------------------------
# Tests on the real tree
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_terraform_invariant_holds(name: str) -> None:
    assert CHECKS[name](TERRAFORM_DIR) == []


def test_every_tf_and_tfvars_file_parses() -> None:
    files = [*TERRAFORM_DIR.glob("*.tf"), *(TERRAFORM_DIR / "environments").glob("*.tfvars")]
    assert len(files) >= 10
    for path in files:
        assert isinstance(hcl2.loads(path.read_text(), serialization_options=_OPTIONS), dict)


def test_function_modules_are_self_contained() -> None:
    assert check_function_modules(ROOT) == []


def test_registry_says_public_signature_functions_verify_signatures() -> None:
    # The lead's rule: worker and webhook are public only because they check signatures.
    by_name = {spec.name: spec for spec in FUNCTIONS}
    assert by_name["worker"].auth == "qstash"
    assert by_name["stripe-webhook"].auth == "stripe"


def test_terraform_files_are_formatted() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform CLI not installed (fmt is the only subcommand usable offline)")
    import subprocess

    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"not terraform-fmt formatted: {result.stdout}"


# ---------------------------------------------------------------------------------------
# Mutation tests: each breaks one invariant in a copy and expects its check to fail
# ---------------------------------------------------------------------------------------

MUTATIONS = [
    pytest.param(
        "secret_in_plain_env",
        "functions.tf",
        '    APP_ENV                = "production"\n',
        '    APP_ENV                = "production"\n    AI_API_KEY = "sk-123"\n',
        check_plain_environment,
        id="secret-moved-to-environment_variables",
    ),
    pytest.param(
        "dev_app_env",
        "functions.tf",
        'APP_ENV                = "production"',
        'APP_ENV                = "development"',
        check_plain_environment,
        id="app-env-not-production",
    ),
    pytest.param(
        "function_removed",
        "functions.json",
        '    "usage": {\n',
        '    "usage-old": {\n',
        check_functions,
        id="function-missing-from-functions-json",
    ),
    pytest.param(
        "wrong_entry_point",
        "functions.json",
        '"entry_point": "drafts"',
        '"entry_point": "draft"',
        check_functions,
        id="wrong-entry-point",
    ),
    pytest.param(
        "object_not_hashed",
        "functions.tf",
        'name   = "${each.key}/${filesha256("${local.package_dir}/${each.key}.zip")}.zip"',
        'name   = "${each.key}/source.zip"',
        check_functions,
        id="source-object-not-named-after-hash",
    ),
    pytest.param(
        "functions_json_hand_edited",
        "functions.json",
        '"memory": "1Gi"',
        '"memory": "2Gi"',
        check_registry_source,
        id="item7-functions-json-out-of-sync",
    ),
    pytest.param(
        "functions_copied_into_locals",
        "main.tf",
        '  functions = jsondecode(file("${path.module}/functions.json")).functions\n',
        '  functions = { health = { module = "health", entry_point = "health" } }\n',
        check_registry_source,
        id="item7-function-list-copied-into-terraform",
    ),
    pytest.param(
        "secret_dropped",
        "secrets.tf",
        "    STRIPE_WEBHOOK_SECRET      = { managed = false }\n",
        "",
        check_secrets,
        id="secret-missing",
    ),
    pytest.param(
        "hs256_deployed",
        "secrets.tf",
        "    CURSOR_SECRET              = { managed = true }\n",
        "    CURSOR_SECRET              = { managed = true }\n"
        "    AUTH_HS256_SECRET          = { managed = false }\n",
        check_secrets,
        id="dev-hs256-secret-deployed",
    ),
    pytest.param(
        "latest_version",
        "functions.tf",
        'version    = local.mount_versions["${each.key}/${secret_environment_variables.key}"]',
        'version    = "latest"',
        check_secrets,
        id="secret-version-latest",
    ),
    pytest.param(
        "project_wide_accessor",
        "iam.tf",
        '  runtime_roles = toset([\n    "roles/logging.logWriter",\n',
        '  runtime_roles = toset([\n    "roles/logging.logWriter",\n'
        '    "roles/secretmanager.secretAccessor",\n',
        check_secrets,
        id="accessor-granted-project-wide",
    ),
    pytest.param(
        "accessor_to_everyone",
        "secrets.tf",
        'member    = "serviceAccount:${google_service_account.fn[each.value.function].email}"',
        'member    = "allAuthenticatedUsers"',
        check_secrets,
        id="accessor-not-limited-to-functions-sa",
    ),
    pytest.param(
        "public_without_comment",
        "iam.tf",
        '# stripe-webhook (auth "stripe"): Stripe cannot present Google credentials; the function\n'
        "# answers 400 unless Stripe-Signature verifies against STRIPE_WEBHOOK_SECRET. With\n"
        "# public_invokers = false Stripe calls it through the gateway (/webhooks/stripe).\n",
        "",
        check_public_invokers,
        id="public-binding-without-auth-comment",
    ),
    pytest.param(
        "public_unknown_function",
        "iam.tf",
        'fn["stripe-webhook"].service_config[0].service',
        'fn["billing-internal"].service_config[0].service',
        check_public_invokers,
        id="public-binding-for-unknown-function",
    ),
    pytest.param(
        "gen1_invoker_role",
        "iam.tf",
        'role     = "roles/run.invoker"\n  member   = "allUsers"\n}\n\n# stripe-webhook',
        'role     = "roles/cloudfunctions.invoker"\n  member   = "allUsers"\n}\n\n# stripe-webhook',
        check_public_invokers,
        id="gen1-invoker-role",
    ),
    pytest.param(
        "metric_event_renamed",
        "monitoring.tf",
        'jsonPayload.event=\\"provider_rate_limited\\"',
        'jsonPayload.event=\\"provider_throttled\\"',
        check_log_metrics,
        id="provider-429-metric-missing",
    ),
    pytest.param(
        "job_field_dropped",
        "monitoring.tf",
        '    enqueue_to_start_ms    = "Enqueue to the worker starting the job (queue delay)"\n',
        "",
        check_log_metrics,
        id="job-latency-field-missing",
    ),
    pytest.param(
        "alert_on_undefined_metric",
        "monitoring.tf",
        "user/${google_logging_metric.spend_anomalies.name}",
        "user/${google_logging_metric.spend_anomaly.name}",
        check_alert_metrics,
        id="alert-reads-undefined-metric",
    ),
    pytest.param(
        "alert_on_literal_metric",
        "monitoring.tf",
        'user/${google_logging_metric.jobs_finished.name}\\" AND metric.label.code',
        'user/reel/jobs_finished\\" AND metric.label.code',
        check_alert_metrics,
        id="alert-reads-metric-by-literal-name",
    ),
    pytest.param(
        "alert_on_unknown_key",
        "monitoring.tf",
        'job_latency["enqueue_to_start_ms"].name}\\"',
        'job_latency["enqueue_to_begin_ms"].name}\\"',
        check_alert_metrics,
        id="alert-reads-unknown-for-each-key",
    ),
    pytest.param(
        "chart_of_undefined_key",
        "dashboards/operations.json.tftpl",
        "${metrics.admissions}",
        "${metrics.admission}",
        check_dashboard,
        id="chart-names-undefined-metric-key",
    ),
    pytest.param(
        "chart_map_to_undefined_metric",
        "monitoring.tf",
        "admissions            = google_logging_metric.admissions.name",
        "admissions            = google_logging_metric.admission.name",
        check_dashboard,
        id="chart-metric-map-names-undefined-metric",
    ),
    pytest.param(
        "dashboard_invalid_json",
        "dashboards/operations.json.tftpl",
        '"columns": 48,',
        '"columns": 48',
        check_dashboard,
        id="dashboard-json-invalid",
    ),
    pytest.param(
        "dashboard_wrong_shape",
        "dashboards/operations.json.tftpl",
        '"timeSeriesFilterRatio"',
        '"timeSeriesFilterRatios"',
        check_dashboard,
        id="dashboard-json-wrong-shape",
    ),
    pytest.param(
        "dashboard_chart_dropped",
        "dashboards/operations.json.tftpl",
        "${metrics.spend_anomalies}",
        "${metrics.admissions}",
        check_dashboard,
        id="dashboard-misses-spend-anomaly-chart",
    ),
    pytest.param(
        "rejections_not_by_code",
        "dashboards/operations.json.tftpl",
        'metric.label.\\"code\\""',
        'metric.label.\\"function\\""',
        check_dashboard,
        id="dashboard-rejections-not-by-code",
    ),
    pytest.param(
        "metric_on_unlogged_event",
        "monitoring.tf",
        'jsonPayload.event=\\"spend_anomaly\\"',
        'jsonPayload.event=\\"spend_alert\\"',
        check_metric_events_emitted,
        id="metric-counts-event-no-code-logs",
    ),
    pytest.param(
        "budget_exceeded",
        "environments/production.tfvars",
        "sql_max_connections     = 300",
        "sql_max_connections     = 100",
        check_connection_budget,
        id="connection-budget-exceeded",
    ),
    pytest.param(
        "build_role_missing",
        "iam.tf",
        'role    = "roles/storage.objectViewer"\n'
        '  member  = "serviceAccount:${google_service_account.build',
        'role    = "roles/logging.viewer"\n'
        '  member  = "serviceAccount:${google_service_account.build',
        check_build_identity,
        id="item1-build-account-without-project-storage-role",
    ),
    pytest.param(
        "build_writes_every_repository",
        "iam.tf",
        '  build_roles = toset([\n    "roles/logging.logWriter",\n',
        '  build_roles = toset([\n    "roles/logging.logWriter",\n'
        '    "roles/artifactregistry.writer",\n',
        check_build_identity,
        id="build-account-writes-every-repository",
    ),
    pytest.param(
        "build_reads_every_bucket",
        "iam.tf",
        '  condition {\n    title       = "function-sources-only"',
        '  dynamic "condition" {\n    title       = "function-sources-only"',
        check_build_identity,
        id="build-account-reads-every-bucket",
    ),
    pytest.param(
        "functions_do_not_wait_for_iam",
        "functions.tf",
        "    time_sleep.iam_propagation,\n",
        "",
        check_build_identity,
        id="item1-functions-do-not-wait-for-grants",
    ),
    pytest.param(
        "alert_without_wait",
        "monitoring.tf",
        "\n  depends_on = [time_sleep.log_metrics]\n",
        "\n",
        check_alert_wait,
        id="item2-alert-policy-does-not-wait",
    ),
    pytest.param(
        "wait_misses_a_metric",
        "monitoring.tf",
        "        google_logging_metric.requests.name,\n",
        "",
        check_alert_wait,
        id="item2-wait-does-not-follow-every-metric",
    ),
    pytest.param(
        "network_read_at_plan_time",
        "sql.tf",
        'resource "google_compute_network" "vpc" {',
        'data "google_compute_network" "vpc" {',
        check_fresh_project_order,
        id="item3-network-data-source",
    ),
    pytest.param(
        "service_account_before_iam_api",
        "iam.tf",
        "\n  # iam.googleapis.com must be on before the first account is created (fresh project).\n"
        "  depends_on = [google_project_service.enabled]\n",
        "\n",
        check_fresh_project_order,
        id="item3-service-account-before-iam-api",
    ),
    pytest.param(
        "peering_fails_when_it_exists",
        "sql.tf",
        "  update_on_creation_fail = true\n",
        "",
        check_private_service_access,
        id="item4-no-update-on-creation-fail",
    ),
    pytest.param(
        "peering_blocks_destroy",
        "sql.tf",
        'deletion_policy = "ABANDON"',
        'deletion_policy = ""',
        check_private_service_access,
        id="item4-no-abandon-on-destroy",
    ),
    pytest.param(
        "placeholder_channel",
        "environments/production.tfvars",
        "alert_5xx_ratio           = 0.02\n",
        "alert_5xx_ratio           = 0.02\n"
        "alert_notification_channels = "
        '["projects/acme-reel-prod/notificationChannels/1234567890"]\n',
        check_notification_channels,
        id="item5-placeholder-channel-in-production-tfvars",
    ),
    pytest.param(
        "channels_optional",
        "variables.tf",
        "  type        = list(string)\n\n  validation {\n    condition = alltrue([\n"
        "      for c in var.alert_notification_channels",
        "  type        = list(string)\n  default     = []\n\n  validation {\n"
        "    condition = alltrue([\n      for c in var.alert_notification_channels",
        check_notification_channels,
        id="item5-channels-not-required",
    ),
    pytest.param(
        "every_secret_mounted",
        "functions.tf",
        "for_each = toset(local.function_secrets[each.key])",
        "for_each = local.secrets",
        check_least_privilege,
        id="item6-function-mounts-every-secret",
    ),
    pytest.param(
        "one_shared_identity",
        "functions.tf",
        "service_account_email          = google_service_account.fn[each.key].email",
        "service_account_email          = google_service_account.build.email",
        check_least_privilege,
        id="item6-functions-share-one-identity",
    ),
    pytest.param(
        "health_gets_stripe",
        "functions.json",
        '"UPSTASH_REDIS_REST_TOKEN"\n      ],\n      "optional_secrets": {}\n    },\n    "worker"',
        '"UPSTASH_REDIS_REST_TOKEN", "STRIPE_SECRET_KEY"\n      ],\n      "optional_secrets": {}\n'
        '    },\n    "worker"',
        check_least_privilege,
        id="item6-health-mounts-the-stripe-key",
    ),
]


MUTATIONS += [
    pytest.param(
        "fallback_key_always_mounted",
        "secrets.tf",
        'FALLBACK_AI_API_KEY        = { managed = false, need = "ai_fallback" }',
        "FALLBACK_AI_API_KEY        = { managed = false }",
        check_optional_needs,
        id="optional-fallback-key-required-when-off",
    ),
    pytest.param(
        "notice_url_to_every_function",
        "functions.tf",
        "    SPEND_ALERT_USD        = tostring(var.spend_alert_usd)\n",
        "    SPEND_ALERT_USD        = tostring(var.spend_alert_usd)\n"
        "    NOTICE_WEBHOOK_URL     = var.notice_webhook_url\n",
        check_optional_needs,
        id="optional-notice-url-in-every-function",
    ),
    pytest.param(
        "optional_secrets_always",
        "secrets.tf",
        "names if local.optional_needs_on[need]",
        "names",
        check_optional_needs,
        id="optional-secrets-mounted-when-off",
    ),
    pytest.param(
        "fallback_env_always",
        "functions.tf",
        "if lookup(local.optional_needs_on, need, false)",
        "if contains(keys(local.need_env), need)",
        check_optional_needs,
        id="optional-settings-set-when-off",
    ),
]


@pytest.mark.parametrize(("label", "relpath", "old", "new", "check"), MUTATIONS)
def test_check_fails_when_invariant_is_broken(
    tmp_path: Path, label: str, relpath: str, old: str, new: str, check: Callable[[Path], list[str]]
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".build", ".terraform"))
    assert check(copy) == [], f"{label}: the unmodified copy must pass"
    target = copy / relpath
    text = target.read_text()
    assert old in text, f"{label}: the text to change is gone; update the mutation"
    target.write_text(text.replace(old, new, 1))
    assert check(copy), f"{label}: {check.__name__} did not notice"


def test_function_module_importing_another_is_caught(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "create.py").write_text("from functions.drafts import drafts\n")
    assert check_function_modules(tmp_path) == ["functions/create.py imports functions.drafts"]


def test_optional_needs_belong_to_the_worker_only() -> None:
    """The fallback provider is the worker's (it runs the jobs) and the notices are the
    sweep's, which the worker serves: no other function has either need."""
    sweep = function_for_path("/worker/sweep")
    assert sweep is not None
    assert sweep.name == "worker"
    for need in OPTIONAL_NEEDS:
        assert {f.name for f in FUNCTIONS if need in f.needs} == {"worker"}, need
    worker = sweep
    assert worker.optional_secrets == {
        "ai_fallback": ("FALLBACK_AI_API_KEY",),
        "notices": ("NOTICE_WEBHOOK_SECRET", "QSTASH_TOKEN"),
    }
    # Off by default: the optional secrets are not among those always mounted.
    assert "FALLBACK_AI_API_KEY" not in worker.secrets
    assert "NOTICE_WEBHOOK_SECRET" not in worker.secrets
    assert "QSTASH_TOKEN" not in worker.secrets


# What the evaluation below reads of the configuration: these variables and locals.
_EVAL_VARIABLES = ("fallback_ai", "circuit", "notice_webhook_url")
_EVAL_LOCALS = (
    "secrets",
    "optional_needs_on",
    "function_secrets",
    "out_of_band_secrets",
    "need_env",
    "function_env",
)


def _local_text(text: str, name: str) -> str:
    """The ``  name = ...`` entry of a locals block, up to its closing bracket."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} = "))
    if lines[start].rstrip()[-1] not in "{[(":
        return lines[start]
    end = next(
        i for i in range(start + 1, len(lines)) if re.fullmatch(r"  [}\])]+", lines[i].rstrip())
    )
    return "\n".join(lines[start : end + 1])


def _evaluate(tmp_path: Path, expr: str, *tf_vars: str) -> Any:
    """``expr`` evaluated by ``terraform console`` over the optional-need locals."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform CLI not installed")
    import subprocess

    texts = [(TERRAFORM_DIR / f).read_text() for f in ("secrets.tf", "functions.tf")]
    variables = (TERRAFORM_DIR / "variables.tf").read_text()
    blocks = []
    for name in _EVAL_VARIABLES:
        start = variables.index(f'variable "{name}" {{')
        blocks.append(variables[start : variables.index("\n}\n", start) + 3])
    blocks.append('variable "use_cloud_sql" {\n  default = true\n}\n')
    found = [next(_local_text(t, n) for t in texts if f"\n  {n} = " in t) for n in _EVAL_LOCALS]
    functions = '  functions = jsondecode(file("${path.module}/functions.json")).functions'
    blocks.append("locals {\n" + "\n".join([functions, *found]) + "\n}\n")
    (tmp_path / "main.tf").write_text("\n".join(blocks))
    shutil.copy(TERRAFORM_DIR / FUNCTIONS_JSON, tmp_path / FUNCTIONS_JSON)
    args = [a for v in tf_vars for a in ("-var", v)]
    result = subprocess.run(
        [terraform, "console", *args],
        input=f"jsonencode({expr})\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(json.loads(result.stdout.strip().splitlines()[-1]))


_ALL = (
    "{secrets = local.function_secrets, env = local.function_env, oob = local.out_of_band_secrets}"
)


def test_optional_settings_are_off_by_default(tmp_path: Path) -> None:
    got = _evaluate(tmp_path, _ALL)
    registry = {f.name: list(f.secrets) for f in FUNCTIONS}
    assert got["secrets"] == registry
    assert got["env"] == {f.name: {} for f in FUNCTIONS}
    assert not {"FALLBACK_AI_API_KEY", "NOTICE_WEBHOOK_SECRET"} & set(got["oob"])


def test_fallback_and_notices_reach_the_worker_only(tmp_path: Path) -> None:
    got = _evaluate(
        tmp_path,
        _ALL,
        'fallback_ai={base_url="https://llm.example/v1",model="m-1",price_in="0.3",price_out="1.2"}',
        "circuit={failures=7}",
        "notice_webhook_url=https://ops.example/notices",
    )
    for name, secrets in got["secrets"].items():
        spec = next(f for f in FUNCTIONS if f.name == name)
        extra = set(secrets) - set(spec.secrets)
        assert extra == (
            {"FALLBACK_AI_API_KEY", "NOTICE_WEBHOOK_SECRET", "QSTASH_TOKEN"}
            if name == "worker"
            else set()
        ), name
    assert {n for n, env in got["env"].items() if env} == {"worker"}
    assert got["env"]["worker"] == {
        "FALLBACK_AI_BASE_URL": "https://llm.example/v1",
        "FALLBACK_AI_MODEL": "m-1",
        "FALLBACK_AI_PROVIDER": "openai-compatible",
        "FALLBACK_AI_PRICE_IN": "0.3",
        "FALLBACK_AI_PRICE_OUT": "1.2",
        "FALLBACK_RESERVE_S": "60",
        "CIRCUIT_FAILURES": "7",
        "CIRCUIT_WINDOW_S": "60",
        "CIRCUIT_COOLDOWN_S": "30",
        "NOTICE_WEBHOOK_URL": "https://ops.example/notices",
    }
    assert {"FALLBACK_AI_API_KEY", "NOTICE_WEBHOOK_SECRET"} <= set(got["oob"])


def test_only_the_fallback_turned_on(tmp_path: Path) -> None:
    got = _evaluate(tmp_path, _ALL, 'fallback_ai={base_url="https://llm.example/v1",model="m"}')
    worker = next(f for f in FUNCTIONS if f.name == "worker")
    assert set(got["secrets"]["worker"]) - set(worker.secrets) == {"FALLBACK_AI_API_KEY"}
    assert "NOTICE_WEBHOOK_URL" not in got["env"]["worker"]
    assert "FALLBACK_AI_PRICE_IN" not in got["env"]["worker"]
    assert "NOTICE_WEBHOOK_SECRET" not in got["oob"]
