"""The deploy path's Terraform: migrations reach the database, credentials are scoped,
secrets stay out of the state, and the deploy documentation says what the files do.

Every check parses the files with python-hcl2 (as tests/integration/test_terraform.py
does); the YAML checks of the workflows are in tests/unit/test_workflows.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import hcl2

from tests.integration.test_terraform import (
    _OPTIONS,
    ROOT,
    TERRAFORM_DIR,
    Terraform,
    _roles_of,
    ci_python_runtime,
    ci_python_versions,
    first,
    function_resource,
    load_terraform,
    ref,
)

BOOTSTRAP_DIR = TERRAFORM_DIR / "bootstrap"
README = TERRAFORM_DIR / "README.md"
MIGRATE_SA = "google_service_account.migrate"
GATEWAY_SA_EMAIL = ref("google_service_account.gateway.email")
# The only role a function's runtime account holds project-wide: metrics are log-based
# and nothing exports traces (test_runtime_accounts_hold_only_what_the_code_uses).
RUNTIME_ROLES = {"roles/logging.logWriter"}
SECRET_READ_ROLES = {"roles/secretmanager.secretAccessor", "roles/secretmanager.admin"}
BROAD_READ_ROLES = {"roles/viewer", "roles/editor", "roles/owner"}


def _roles(value: object) -> set[str]:
    return set(re.findall(r"roles/[\w.]+", str(value)))


def _tf() -> Terraform:
    return load_terraform(TERRAFORM_DIR)


def _ephemeral(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        doc = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        for block in doc.get("ephemeral", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[(rtype, name)] = body
    return found


# --- Item 4: migrations ----------------------------------------------------------------


def test_migrations_run_in_a_cloud_run_job_inside_the_vpc() -> None:
    tf = _tf()
    jobs = tf.resources_of("google_cloud_run_v2_job")
    assert list(jobs) == ["migrate"], "one migration job"
    inner = first(first(jobs["migrate"]["template"])["template"])
    assert inner["service_account"] == ref(f"{MIGRATE_SA}.email"), "its own account"
    vpc = inner["dynamic"][0]["vpc_access"]
    assert vpc["for_each"] == ref(
        "var.use_cloud_sql ? [google_vpc_access_connector.functions[0].id] : []"
    ), "through the functions' VPC connector (Cloud SQL has only a private IP)"
    container = first(inner["containers"])
    assert container["args"] == [ref("local.migrate_script")]
    script = tf.locals["migrate_script"]
    assert "exec python -m shared.db.migrate" in script
    assert "--require-hashes" in script, "the locked tree, hash-checked"
    env = {e["name"]: e for e in container["env"]}
    secret = first(first(env["DATABASE_URL"]["value_source"])["secret_key_ref"])
    assert secret["secret"] == ref("local.migrate_url_secret.id")
    assert '"migrate"' in str(tf.locals["migrate_url_secret"]), "its own database role"
    # It reads its zip from the sources bucket (bucket-level grant), nothing project-wide.
    obj = tf.resources_of("google_storage_bucket_object")["migrate"]
    assert "${filesha256(local.migrate_zip)}" in obj["name"]
    grants = [
        b
        for b in tf.resources_of("google_project_iam_member").values()
        if MIGRATE_SA in str(b.get("member"))
    ]
    assert [b["role"] for b in grants] == ["roles/logging.logWriter"]


def test_the_migration_image_is_the_runtime_python() -> None:
    default = _tf().variables["migrate_image"]["default"]
    version = ci_python_versions()[0]
    assert re.search(rf"python:{re.escape(version)}\b", default), default


# --- Item 6: credentials ----------------------------------------------------------------


def test_functions_runtime_is_the_python_ci_tests_and_this_machine_runs() -> None:
    _, fn = function_resource(_tf()) or ("", {})
    runtime = first(fn["build_config"])["runtime"]
    assert runtime == ci_python_runtime(), "deploy the Python CI tests"
    assert runtime == f"python{sys.version_info.major}{sys.version_info.minor}"


def test_runtime_accounts_hold_only_what_the_code_uses() -> None:
    tf = _tf()
    assert set(re.findall(r'"(roles/[\w.]+)"', str(tf.locals["runtime_roles"]))) == RUNTIME_ROLES
    # And nothing in the shipped code writes metrics or traces through the APIs those
    # roles would allow.
    shipped = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "shared").rglob("*.py")) + (
        ROOT / "requirements.txt"
    ).read_text(encoding="utf-8")
    for client in ("google.cloud.monitoring", "google.cloud.trace", "opentelemetry"):
        assert client not in shipped, client


def test_build_account_is_scoped_to_the_sources_and_one_repository() -> None:
    tf = _tf()
    build = "serviceAccount:${google_service_account.build.email}"
    project = [
        b for b in tf.resources_of("google_project_iam_member").values() if b["member"] == build
    ]
    unconditioned = set().union(*(_roles_of(tf, b) for b in project if not b.get("condition")))
    assert unconditioned == {"roles/logging.logWriter"}
    reads = [b for b in project if b.get("role") == "roles/storage.objectViewer"]
    assert len(reads) == 1
    assert "local.build_source_buckets" in str(first(reads[0]["condition"])["expression"])
    assert "google_storage_bucket.sources.name" in str(tf.locals["build_source_buckets"])
    repo = tf.resources_of("google_artifact_registry_repository_iam_member")["build"]
    assert repo["repository"] == ref("google_artifact_registry_repository.functions.name")
    assert repo["role"] == "roles/artifactregistry.writer"


def test_the_gateway_config_runs_as_its_own_account() -> None:
    config = _tf().resources_of("google_api_gateway_api_config")["api"]
    backend = first(first(config["gateway_config"])["backend_config"])
    assert backend["google_service_account"] == GATEWAY_SA_EMAIL


def test_generated_secrets_never_reach_the_state() -> None:
    tf = _tf()
    assert tf.resources_of("random_password") == {}, "random_password keeps its result in state"
    assert set(_ephemeral(TERRAFORM_DIR)) == {
        ("random_password", "sql"),
        ("random_password", "cursor_secret"),
    }
    for name, user in tf.resources_of("google_sql_user").items():
        assert "password" not in user, f"google_sql_user.{name}: password is stored in state"
        assert "password_wo" in user
        assert "password_wo_version" in user
    for name, version in tf.resources_of("google_secret_manager_secret_version").items():
        if name == "upstash_rest_token":
            continue  # the provider exports the token as an attribute (README "Secrets")
        assert "secret_data" not in version, f"{name}: secret_data is stored in state"
        assert "secret_data_wo_version" in version, name


def test_database_roles_per_kind_of_access() -> None:
    tf = _tf()
    users = tf.locals["sql_users"]
    for role in ("reel_app", "reel_readonly", "reel_migrate"):
        assert role in str(users), role
    # health connects as the read-only role; migrations as their own (the job).
    assert tf.locals["readonly_functions"] == '${var.use_cloud_sql ? toset(["health"]) : toset([])}'
    mount = str(tf.locals["mount_secret_ids"])
    assert 'local.role_secret_ids["readonly"]' in mount
    assert "contains(local.readonly_functions, g.function)" in mount
    grants = (ROOT / "migrations" / "0010_database_roles.sql").read_text(encoding="utf-8")
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reel_readonly" in grants


def test_pgaudit_is_configured_not_just_loaded() -> None:
    instance = _tf().resources_of("google_sql_database_instance")["main"]
    flags = {f["name"]: f["value"] for f in first(instance["settings"])["database_flags"]}
    assert flags["cloudsql.enable_pgaudit"] == "on"
    assert flags.get("pgaudit.log") == "ddl,role"
    sql = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "migrations").glob("*.sql"))
    assert "CREATE EXTENSION IF NOT EXISTS pgaudit" in sql


# --- Item 6: the bootstrap (Workload Identity Federation) ---------------------------------


def _bootstrap() -> Terraform:
    return load_terraform(BOOTSTRAP_DIR)


def test_bootstrap_wif_provider_is_conditioned_on_repository_and_environment() -> None:
    tf = _bootstrap()
    provider = tf.resources_of("google_iam_workload_identity_pool_provider")["github"]
    assert first(provider["oidc"])["issuer_uri"] == "https://token.actions.githubusercontent.com"
    condition = provider["attribute_condition"]
    env = "${var.environment}"
    repo = "${var.github_owner}/${var.github_repository}"
    assert f"assertion.sub == 'repo:{repo}:environment:{env}'" in condition
    assert f"assertion.sub == 'repo:{repo}:environment:{env}-plan'" in condition
    assert "assertion.repository_id == '${var.github_repository_id}'" in condition
    mapping = provider["attribute_mapping"]
    assert mapping["attribute.environment"] == "assertion.environment"


def test_bootstrap_planner_and_deployer_are_separate_and_scoped() -> None:
    tf = _bootstrap()
    accounts = tf.resources_of("google_service_account")
    assert set(accounts) == {"planner", "deployer"}
    planner_roles = _roles(tf.locals["planner_roles"])
    assert not planner_roles & (SECRET_READ_ROLES | BROAD_READ_ROLES), planner_roles
    deployer_roles = _roles(tf.locals["deployer_roles"])
    assert "roles/owner" not in deployer_roles
    assert "roles/editor" not in deployer_roles
    wif = tf.resources_of("google_service_account_iam_member")
    assert wif["planner_wif"]["member"].endswith("/attribute.environment/${local.plan_environment}")
    assert wif["deployer_wif"]["member"].endswith("/attribute.environment/${var.environment}")
    # Project IAM changes are limited to the roles the main root grants.
    iam_admin = tf.resources_of("google_project_iam_member")["deployer_project_iam"]
    assert "modifiedGrantsByRole" in first(iam_admin["condition"])["expression"]
    main = _tf()
    main_roles = set().union(
        *(_roles_of(main, b) for b in main.resources_of("google_project_iam_member").values())
    )
    assert "roles/logging.logWriter" in main_roles
    grantable = _roles(tf.locals["grantable_project_roles"])
    assert main_roles <= grantable, main_roles - grantable


# --- Item 7: a fresh organisation -----------------------------------------------------------


def test_public_invokers_switch_removes_allusers_from_the_gateway_functions() -> None:
    tf = _tf()
    assert tf.variables["public_invokers"]["type"] in ("bool", "${bool}")
    invokers = tf.resources_of("google_cloud_run_service_iam_member")
    assert "var.public_invokers &&" in str(tf.locals["public_api_functions"])
    assert invokers["public_stripe_webhook"]["count"] == "${var.public_invokers ? 1 : 0}"
    gateway = invokers["gateway"]
    assert gateway["for_each"] == "${var.public_invokers ? {} : local.gateway_functions}"
    assert gateway["member"] == "serviceAccount:${google_service_account.gateway.email}"
    assert '"stripe"' in str(tf.locals["gateway_functions"])
    env = tf.locals["plain_env"]
    assert env["AUTH_HEADER"] == (
        '${var.public_invokers ? "Authorization" : "X-Forwarded-Authorization"}'
    )


# --- Item 8: the deploy documentation says what the files do -------------------------------
# The deploy docs: this README, and docs/deploy.md where the top-level README's deploy
# section lives (when present).
DEPLOY_DOCS = [p for p in (README, ROOT / "docs" / "deploy.md") if p.is_file()]
GCS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def _docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DEPLOY_DOCS)


def test_the_documented_number_of_apis_is_the_number_enabled() -> None:
    enabled = len(re.findall(r"[\w-]+\.googleapis\.com", str(_tf().locals["required_apis"])))
    claims = [int(n) for n in re.findall(r"\b(\d+) APIs\b", _docs())]
    assert claims, "the deploy docs should say how many APIs the apply enables"
    assert set(claims) == {enabled}, f"docs say {claims}, main.tf enables {enabled}"


def test_every_switch_the_docs_name_exists() -> None:
    tf = _tf()
    docs = _docs()
    texts = "\n".join(tf.texts.values())
    # `name = true|false`: a variable, or an argument some block sets.
    for name in sorted(set(re.findall(r"`(\w+) = (?:true|false)`", docs))):
        assert name in tf.variables or re.search(rf"^\s*{name}\s*=", texts, re.M), name
    # "switch: `name`" / "(switch `name`)": a bool variable.
    for name in sorted(set(re.findall(r"switch(?:es)?:? `(\w+)`", docs))):
        assert tf.variables.get(name, {}).get("type") in ("bool", "${bool}"), name
    # Every bool variable is documented.
    for name, body in sorted(tf.variables.items()):
        if body.get("type") in ("bool", "${bool}"):
            assert f"`{name}" in docs, f"variable {name} is not documented"
    # Nothing is called optional that no variable turns off.
    switches = [n for n, b in tf.variables.items() if b.get("type") in ("bool", "${bool}")]
    if not any("gateway" in n for n in switches):
        assert not re.search(
            r"optional[^.\n]{0,40}[Gg]ateway|[Gg]ateway[^.\n]{0,20} is optional", docs
        )


def test_the_lock_file_claim_matches_the_repository() -> None:
    present = (TERRAFORM_DIR / ".terraform.lock.hcl").is_file()
    docs = _docs()
    versions = (TERRAFORM_DIR / "versions.tf").read_text(encoding="utf-8")
    says_absent = "`.terraform.lock.hcl` is not committed" in docs
    assert says_absent != present, "the docs and the repository disagree about the lock file"
    # versions.tf said "must then be committed" of a file that was never there.
    assert ("No .terraform.lock.hcl" in versions) != present


def test_example_state_bucket_names_are_valid_bucket_names() -> None:
    for example in sorted(TERRAFORM_DIR.rglob("backend.tf.example")):
        doc = hcl2.loads(example.read_text(encoding="utf-8"), serialization_options=_OPTIONS)
        bucket = first(doc["terraform"][0]["backend"])["gcs"]["bucket"]
        assert GCS_BUCKET_RE.fullmatch(bucket), f"{example}: {bucket!r}"
    for name in re.findall(r"gs://([^\s/`]+)", _docs()):
        assert GCS_BUCKET_RE.fullmatch(name), name
    # The bootstrap refuses what Cloud Storage refuses.
    validation = _bootstrap().variables["state_bucket"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("(.+)", var\.state_bucket\)', validation)
    assert pattern is not None
    rule = re.compile(pattern.group(1).replace("\\\\", "\\"))
    assert not rule.fullmatch("ACME-reel-tfstate")
    assert rule.fullmatch("acme-reel-tfstate")


def test_the_documented_bootstrap_roles_are_the_granted_ones() -> None:
    tf = _bootstrap()
    docs = _docs()
    section = docs[
        docs.index("Deployer roles (project)") : docs.index(
            "```bash", docs.index("Deployer roles (project)")
        )
    ]
    deployer_part, planner_part = section.split("Planner roles (project)")
    granted = _roles(tf.locals["deployer_roles"]) | {
        b["role"] for b in tf.resources_of("google_project_iam_member").values() if "condition" in b
    }
    documented = _roles(deployer_part) - _roles(tf.locals["grantable_project_roles"])
    assert documented == granted
    assert _roles(planner_part) == _roles(tf.locals["planner_roles"])


def test_the_documented_runtime_is_the_deployed_one() -> None:
    _, fn = function_resource(_tf()) or ("", {})
    runtime = first(fn["build_config"])["runtime"]
    docs = _docs()
    assert f"`{runtime}`" in docs
    version = f"{runtime[6]}.{runtime[7:]}"
    for mentioned in re.findall(r"Python (3\.\d+)", docs):
        assert mentioned == version, f"docs mention Python {mentioned}, runtime is {runtime}"


def test_every_plan_time_read_is_documented() -> None:
    docs = _docs()
    assert "no plan-time reads" not in docs
    for rtype, name in _tf().data:
        assert f"data.{rtype}.{name}" in docs, f"data.{rtype}.{name} is read at plan time"


def test_the_optional_features_are_documented_as_deployed() -> None:
    """The fallback provider and the notice webhook: the README names the variables that
    turn them on and every setting and secret they deploy (to the worker only)."""
    from shared.needs import NEED_SECRETS, OPTIONAL_NEEDS

    tf = _tf()
    docs = _docs()
    for variable in ("fallback_ai", "circuit", "notice_webhook_url"):
        assert variable in tf.variables, variable
        assert f"`{variable}" in docs, f"variable {variable} is not documented"
    need_env = str(tf.locals["need_env"])
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]{3,})\b", need_env))
    assert {"FALLBACK_AI_BASE_URL", "NOTICE_WEBHOOK_URL"} <= names
    for name in sorted(names):
        assert f"`{name}`" in docs, f"{name} is deployed but not documented"
    for need in OPTIONAL_NEEDS:
        assert f"`{need.value}`" in docs, need
        for secret in NEED_SECRETS[need]:
            assert f"`{secret}`" in docs, secret
