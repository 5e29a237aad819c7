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
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref


def test_permissions_are_empty_or_read_by_default() -> None:
    assert _load("ci.yml")["permissions"] == {"contents": "read"}
    assert _load("deploy.yml")["permissions"] == {}


def test_production_waits_for_staging_and_its_environment() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert jobs["production"]["needs"] == "staging"
    assert jobs["production"]["environment"] == "production"
    assert jobs["staging"]["environment"] == "staging"
    for env in ("staging", "production"):
        steps = [s.get("name", s.get("uses", "")) for s in jobs[env]["steps"]]
        order = [
            next(i for i, s in enumerate(steps) if key in s)
            for key in ("migrate", "apply", "smoke")
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
