"""The GitHub workflows: actions pinned by commit, least privilege, a gated production.

``make lint`` validates them against GitHub's schema and audits them with zizmor; these
checks pin down the project's own rules on top.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_every_action_is_pinned_by_commit_sha() -> None:
    uses = [
        m.group(1)
        for path in WORKFLOWS.glob("*.yml")
        for m in re.finditer(r"^\s*(?:-\s*)?uses:\s*(\S+)", path.read_text(), re.M)
    ]
    assert uses
    for ref in uses:
        # Pinned by commit, or this repository's own reusable workflow (same commit).
        local = re.fullmatch(r"\./\.github/workflows/[\w.-]+\.yml", ref)
        assert local or re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref


def test_permissions_are_empty_or_read_by_default() -> None:
    assert _load("ci.yml")["permissions"] == {"contents": "read"}
    assert _load("deploy.yml")["permissions"] == {}


def test_production_waits_for_staging_and_its_environment() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert "staging" in jobs["production"]["needs"]
    assert jobs["production"]["environment"] == "production"
    assert jobs["staging"]["environment"] == "staging"
    for env in ("staging", "production"):
        steps = [s.get("name", s.get("uses", "")) for s in jobs[env]["steps"]]
        order = [
            next(i for i, s in enumerate(steps) if key in s)
            for key in ("migrations", "apply", "smoke")
        ]
        assert order == sorted(order), env
        assert f"DEPLOY_ENV: {env}" in yaml.safe_dump(jobs[env])
    # Google auth by Workload Identity Federation, never a JSON key.
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "workload_identity_provider" in text
    assert "credentials_json" not in text


def test_ci_runs_make_test_with_postgres_16_and_redis_7() -> None:
    job = _load("ci.yml")["jobs"]["test"]
    assert job["services"]["postgres"]["image"] == "postgres:16"
    assert job["services"]["redis"]["image"] == "redis:7"
    assert any(step.get("run") == "make test" for step in job["steps"])


# --- The deploy path ----------------------------------------------------------------------
# Static bearer tokens expire and outlive their purpose: a workflow never reads one.
STATIC_TOKEN_SECRET = re.compile(r"TOKEN|JWT|BEARER", re.I)
SECRET_REF = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)")
ENVIRONMENTS = ("staging", "production")


def _strings(node: object) -> list[str]:
    """Every string (keys and values) in a parsed YAML document."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _secrets_read(node: object) -> set[str]:
    return {m.group(1) for s in _strings(node) for m in SECRET_REF.finditer(s)}


def _triggers(doc: dict) -> dict:
    # YAML 1.1 reads the key "on" as the boolean true.
    on = doc.get("on", doc.get(True))
    return on if isinstance(on, dict) else dict.fromkeys([on] if isinstance(on, str) else on)


def _all_workflows() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}


def test_no_workflow_reads_a_static_bearer_token() -> None:
    for name, doc in _all_workflows().items():
        static = sorted(s for s in _secrets_read(doc) if STATIC_TOKEN_SECRET.search(s))
        assert not static, f"{name} reads a long-lived token from secrets: {static}"
        assert "SMOKE_TOKEN" not in _strings(doc), f"{name} sets SMOKE_TOKEN"


def test_smoke_mints_a_fresh_token_each_run() -> None:
    jobs = _load("deploy.yml")["jobs"]
    for env in ENVIRONMENTS:
        smoke = [s for s in jobs[env]["steps"] if "smoke" in s.get("name", "")]
        assert len(smoke) == 1, env
        assert "--client-credentials" in smoke[0]["run"], env
        assert {"SMOKE_TOKEN_URL", "SMOKE_CLIENT_ID"} <= smoke[0]["env"].keys(), env
        # The client secret is a Secret Manager name the deployer reads, not a GitHub secret.
        assert "/secrets/" in smoke[0]["run"], env
        assert not _secrets_read(smoke[0]), env


def test_runs_on_is_never_an_expression() -> None:
    # runs-on is evaluated before the job's environment exists: an environment variable
    # there is always empty, so a fallback would silently pick another runner.
    for name, doc in _all_workflows().items():
        for job_name, job in doc["jobs"].items():
            if "uses" in job:
                continue
            assert "${{" not in str(job["runs-on"]), f"{name} {job_name}: {job['runs-on']}"


def _needs(job: dict) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def test_deploys_run_only_after_ci_passed_for_that_commit() -> None:
    deploy = _load("deploy.yml")
    jobs = deploy["jobs"]
    ci_jobs = {n for n, j in jobs.items() if j.get("uses") == "./.github/workflows/ci.yml"}
    assert ci_jobs, "deploy.yml must run ci.yml (workflow_call) before deploying"
    assert "workflow_call" in _triggers(_load("ci.yml"))
    for env in ENVIRONMENTS:
        # needs: a job runs only when every job it needs succeeded.
        assert ci_jobs & set(_needs(jobs[env])), f"{env} does not need the CI job"
        assert "always()" not in str(jobs[env].get("if", "")), env
    # Deploys come from pushes to main, never from pull requests.
    assert _triggers(deploy)["push"] == {"branches": ["main"]}


def test_plan_job_sees_no_secret_and_reads_nothing_secret() -> None:
    plan = _load("deploy.yml")["jobs"]["plan"]
    assert str(plan["environment"]).endswith("-plan")
    assert _secrets_read(plan) == set(), "the pull-request plan job reads GitHub secrets"
    runs = " ".join(s.get("run", "") for s in plan["steps"])
    # Refreshing a secret version reads its payload; Upstash refreshes need the key.
    assert "terraform -chdir=terraform plan" in runs
    assert "-refresh=false" in runs
    assert "github.event.pull_request.head.repo.full_name == github.repository" in plan["if"]


def test_migrations_run_as_the_terraform_job_and_are_awaited() -> None:
    jobs = _load("deploy.yml")["jobs"]
    for env in ENVIRONMENTS:
        steps = jobs[env]["steps"]
        text = [s.get("run", "") for s in steps]
        assert not any("make migrate" in t for t in text), env
        job_step = next(i for i, t in enumerate(text) if "gcloud run jobs execute" in t)
        assert "--wait" in text[job_step]
        assert "-target=google_cloud_run_v2_job.migrate" in text[job_step]
        full_apply = next(i for i, t in enumerate(text) if "apply -input=false tfplan" in t)
        assert job_step < full_apply, env
