"""make package: one deployable zip per function, complete and free of development code.

Each zip is unpacked into its own directory (as Cloud Functions unpacks the source) and
started in a fresh interpreter whose only project code is that directory: ``python -I``
(no current directory, no PYTHONPATH) from a working directory outside the repository,
with production settings and only the secrets the registry mounts for that function.
A module missing from a zip, a function requiring a secret it is not given, or a dev-only
import fails here instead of in Cloud Build or on the first cold start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.package import DEV_ONLY, NEVER_SHIPPED, build, main_py
from shared.needs import NEED_SECRETS
from shared.registry import FUNCTIONS, FunctionSpec

ROOT = Path(__file__).resolve().parents[2]

# Terraform's plain environment (functions.tf local.plain_env), with placeholder values.
PLAIN_ENV = {
    "APP_ENV": "production",
    "QUEUE_BACKEND": "qstash",
    "AI_PROVIDER": "minimax",
    "UPSTASH_REDIS_REST_URL": "https://example.upstash.io",
    "QSTASH_URL": "https://qstash.example",
    "WORKER_URL": "https://reel-worker-123.europe-west1.run.app",
    "AUTH_JWKS_URL": "https://auth.example/.well-known/jwks.json",
    "AUTH_ISSUER": "https://auth.example/",
    "AUTH_AUDIENCE": "reel-content-api",
    "CORS_ALLOWED_ORIGINS": "https://app.example",
}

# Imports every module of the unpacked zip, checks each came from it, then starts the
# entry point the way the functions framework does and reads the production settings.
PROBE = r"""
import importlib, json, pathlib, sys
src = pathlib.Path(sys.argv[1]).resolve()
sys.path.insert(0, str(src))
names = sorted(
    ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
    for p in src.rglob("*.py")
)
outside = []
for name in names:
    module = importlib.import_module(name)
    if not pathlib.Path(module.__file__).resolve().is_relative_to(src):
        outside.append(name)
import functions_framework
app = functions_framework.create_app(sys.argv[2], str(src / "main.py"))
from shared.config import get_settings
settings = get_settings()
from shared.redis.scripts import default_registry
default_registry().get("admission")
status = None
client = app.test_client()
if sys.argv[2] == "health":
    status = client.get("/healthz").status_code
# A browser on the frontend's origin calls this function's own URL (no gateway).
preflight = client.options(sys.argv[3], headers={
    "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
cors = [preflight.status_code, preflight.headers.get("Access-Control-Allow-Origin"),
        preflight.headers.get("Access-Control-Allow-Headers")]
print(json.dumps({"modules": len(names), "outside": outside, "function": settings.app_function,
                  "healthz": status, "cors": cors}))
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("functions")
    build(out)
    return out


def _probe(
    src: Path, spec: FunctionSpec, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    path = spec.paths[0] + ("x" if spec.paths[0].endswith("/") else "")
    return subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(src), spec.entry_point, path],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _unpack(packages: Path, spec: FunctionSpec, into: Path) -> Path:
    target = into / spec.name
    with zipfile.ZipFile(packages / f"{spec.name}.zip") as zf:
        zf.extractall(target)
    return target


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_zip_holds_its_own_module_the_library_and_the_lock(
    packages: Path, spec: FunctionSpec
) -> None:
    with zipfile.ZipFile(packages / f"{spec.name}.zip") as zf:
        names = set(zf.namelist())
        assert zf.read("main.py").decode() == main_py(spec)
        assert zf.read("requirements.txt") == (ROOT / "requirements.lock").read_bytes()
    modules = {n for n in names if n.startswith("functions/")}
    assert modules == {"functions/__init__.py", f"functions/{spec.module}.py"}
    for needed in ("shared/__init__.py", "shared/api/http.py", "lua/admission.lua"):
        assert needed in names
    assert not [n for n in names if n.startswith(NEVER_SHIPPED) or n in DEV_ONLY]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "schema.sql" not in names
    assert not [n for n in names if n.startswith("migrations/")]


def test_requirements_are_hash_pinned(packages: Path) -> None:
    text = (ROOT / "requirements.lock").read_text()
    pins = [line for line in text.splitlines() if line and line[0].isalnum()]
    assert len(pins) > 20
    assert all("==" in line for line in pins)
    assert text.count("--hash=sha256:") >= len(pins)


def test_zips_are_reproducible(packages: Path, tmp_path: Path) -> None:
    again = build(tmp_path, only=["health", "worker"])
    for name, digest in again.items():
        assert (packages / f"{name}.zip").read_bytes() == (tmp_path / f"{name}.zip").read_bytes()
        assert len(digest) == 64


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_each_zip_starts_alone_in_production_with_only_its_secrets(
    packages: Path, spec: FunctionSpec, tmp_path: Path
) -> None:
    src = _unpack(packages, spec, tmp_path)
    env = {**PLAIN_ENV, "APP_FUNCTION": spec.name, "PATH": "/usr/bin:/bin"}
    env.update({name: f"secret-{name.lower()}" for name in spec.secrets})
    result = _probe(src, spec, env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outside"] == []
    assert report["function"] == spec.name
    if spec.name == "health":
        assert report["healthz"] == 200
    status, allow_origin, allow_headers = report["cors"]
    assert status == 204
    assert allow_origin == "https://app.example"
    assert "Idempotency-Key" in allow_headers


def test_health_needs_neither_stripe_nor_minimax_nor_qstash() -> None:
    health = next(f for f in FUNCTIONS if f.name == "health")
    assert set(health.secrets) == {"DATABASE_URL", "UPSTASH_REDIS_REST_TOKEN"}
    every_secret = {s for secrets in NEED_SECRETS.values() for s in secrets}
    optional = {s for f in FUNCTIONS for names in f.optional_secrets.values() for s in names}
    assert every_secret == {s for f in FUNCTIONS for s in f.secrets} | optional


def test_a_zip_missing_a_module_fails_the_probe(packages: Path, tmp_path: Path) -> None:
    # The probe is what proves completeness, so it must notice a missing file.
    spec = next(f for f in FUNCTIONS if f.name == "drafts")
    src = _unpack(packages, spec, tmp_path)
    (src / "shared" / "api" / "handlers" / "drafts.py").unlink()
    (src / "shared" / "errors.py").unlink()
    env = {**PLAIN_ENV, "APP_FUNCTION": spec.name, "PATH": "/usr/bin:/bin"}
    env.update(dict.fromkeys(spec.secrets, "x"))
    result = _probe(src, spec, env, tmp_path)
    assert result.returncode != 0
    assert "shared.errors" in result.stderr or "ModuleNotFoundError" in result.stderr


def test_a_function_without_a_secret_it_needs_refuses_to_start(
    packages: Path, tmp_path: Path
) -> None:
    spec = next(f for f in FUNCTIONS if f.name == "worker")
    src = _unpack(packages, spec, tmp_path)
    env = {**PLAIN_ENV, "APP_FUNCTION": spec.name, "PATH": "/usr/bin:/bin"}
    env.update({name: "x" for name in spec.secrets if name != "AI_API_KEY"})
    result = _probe(src, spec, env, tmp_path)
    assert result.returncode != 0
    assert "AI_API_KEY" in result.stderr
