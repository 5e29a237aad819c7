"""``make rehearse``: production's shape on one machine.

Every function runs from its own deployable zip (``make package``), unpacked into its
own directory, in its own process started by the functions-framework CLI as Cloud
Functions starts it, from a virtualenv built from the zip's pinned ``requirements.txt``
alone (no development package can hide a missing dependency), with ``APP_ENV=production``
and the production configuration check passing unmodified:

- tokens: RS256 from a local issuer (``devtools.jwks_server``) at ``AUTH_JWKS_URL``;
- queue: ``QUEUE_BACKEND=qstash``, ``QSTASH_URL`` at ``devtools.qstash_server``, which
  delivers with ``Upstash-Signature`` to the worker's own URL (``WORKER_URL``) and runs
  the sweep schedule, as Terraform's ``upstash_qstash_schedule_v2`` does;
- Redis: ``UPSTASH_REDIS_REST_URL`` at ``devtools.upstash_rest`` in front of real Redis;
- Postgres: a fresh database on the real server, migrated as ``make migrate`` does;
- MiniMax: ``devtools.fake_minimax`` answering what each prompt asks for, and its
  ``FakeOpenAI`` as the worker's second provider (``FALLBACK_AI_*``, Terraform's
  ``fallback_ai`` turned on), so a job falls back when MiniMax fails;
- a gateway: nginx (``devtools.gateway``) as the one origin for ``/v1/*``;
- the example frontend (``examples/web``) served from another origin.

It prints the gateway URL, the page URL and a token for a user on the Standard plan,
writes the same (and every process it started) to ``build/rehearse/rehearsal.json``, and
runs until Ctrl-C (SIGINT), SIGTERM or SIGHUP, which stop every process group it started,
drop the database and the run's Redis keys. Logs: ``build/rehearse/logs/``.

Why this module stays whole (over 500 lines): it is one sequence read top to bottom, the
order in which a deployment comes up (zips, their virtualenv, the database, the stand-ins
for Upstash, QStash, MiniMax and the issuer, every function, the gateway, the page) and
goes down in reverse, and every step shares the ``Rehearsal``'s state (ports, started
process groups, the cleanup stack). The stand-ins and renderers it drives already live in
their own modules; cutting the sequence itself would make a reader jump between files to
follow one start-up, and it is development code that no deployment carries.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from devtools.devservers import (
    create_database,
    drop_database,
    embedded_postgres_url,
    embedded_redis_url,
    postgres_serves,
    redis_serves,
)
from devtools.fake_minimax import FakeMiniMax, FakeOpenAI, answer_prompt
from devtools.gateway import render_nginx
from devtools.jwks_server import Issuer, JwksServer, SigningKey, jwks
from devtools.net import free_port
from devtools.qstash_server import QStashServer
from devtools.upstash_rest import UpstashRestServer
from shared.needs import NEED_SECRETS, Need
from shared.registry import FUNCTIONS, FunctionSpec

__all__ = ["Rehearsal", "build_packages", "main"]

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
STATE_DIR = BUILD / "rehearse"
STATE_FILE = STATE_DIR / "rehearsal.json"
VENV_DIR = BUILD / "rehearse-venv"
WEB_DIR = ROOT / "examples" / "web"
PAGE_DIR = WEB_DIR / "dist"  # the built example app (make web)
VITE = ROOT / "node_modules" / ".bin" / "vite"
ISSUER = "https://issuer.rehearsal.local"
AUDIENCE = "reel-content"
DEMO_USER = "rehearsal-demo"
# The sweep runs every 5 minutes in production; every minute here so a run sees one.
SWEEP_CRON = "* * * * *"
READY_LINE = "REHEARSAL READY"


def build_packages() -> Path:
    """Every function's deployable zip, built by ``make package`` (scripts/package.py)."""
    subprocess.run([sys.executable, "-m", "scripts.package"], cwd=ROOT, check=True)
    return BUILD / "functions"


def runtime_venv(requirements: Path) -> Path:
    """A virtualenv with exactly the zip's pinned requirements, rebuilt when they change."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    stamp = VENV_DIR / f".requirements-{digest}"
    if stamp.exists():
        return VENV_DIR
    shutil.rmtree(VENV_DIR, ignore_errors=True)
    log = BUILD / "rehearse-venv.log"
    print(
        f"rehearse: building {VENV_DIR.relative_to(ROOT)} from the zip's requirements.txt "
        f"(about 2 minutes; log: {log.relative_to(ROOT)})",
        flush=True,
    )
    subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True)
    pip = [str(VENV_DIR / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    with log.open("wb") as out:
        result = subprocess.run([*pip, "-r", str(requirements)], stdout=out, stderr=out)
    if result.returncode != 0:
        raise RuntimeError(f"pip install failed; see {log}")
    stamp.touch()
    return VENV_DIR


def production_env(
    *,
    minimax_url: str,
    upstash_url: str,
    qstash_url: str,
    worker_url: str,
    jwks_url: str,
    page_url: str,
    log_level: str,
    redis_key_prefix: str,
) -> dict[str, str]:
    """Terraform's plain environment (``local.plain_env`` in terraform/functions.tf, kept
    equal by tests/unit/test_devtools_rehearse.py) pointed at the local stand-ins, plus
    REDIS_KEY_PREFIX, which keeps this run's keys apart on a shared Redis."""
    return {
        "APP_ENV": "production",
        "QUEUE_BACKEND": "qstash",
        "AI_PROVIDER": "minimax",
        "AI_MODEL": "",  # as Terraform deploys it by default: the provider's own model
        "AI_BASE_URL": minimax_url,
        "UPSTASH_REDIS_REST_URL": upstash_url,
        "QSTASH_URL": qstash_url,
        "QSTASH_RETRIES": "3",
        "WORKER_URL": worker_url,
        "AUTH_JWKS_URL": jwks_url,
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        # public_invokers = true: callers reach the functions with their own token.
        "AUTH_HEADER": "Authorization",
        "CORS_ALLOWED_ORIGINS": page_url.rstrip("/"),
        "LOG_LEVEL": log_level,
        "STRIPE_PRICE_BASIC": "price_rehearsal_basic",
        "STRIPE_PRICE_STANDARD": "price_rehearsal_standard",
        "STRIPE_PRICE_PRO": "price_rehearsal_pro",
        "STRIPE_PRICE_PRO_BOOST": "price_rehearsal_pro_boost",
        "STRIPE_PRICE_PACK_50": "price_rehearsal_pack_50",
        "STRIPE_PRICE_PACK_200": "price_rehearsal_pack_200",
        "STRIPE_SUCCESS_URL": page_url + "?billing=success",
        "STRIPE_CANCEL_URL": page_url + "?billing=cancel",
        "SPEND_ALERT_USD": "5",
        "REDIS_KEY_PREFIX": redis_key_prefix,
    }


FALLBACK_MODEL = "fake-fallback-1"


def fallback_env(base_url: str) -> dict[str, str]:
    """Terraform's settings of the optional need ``ai_fallback`` (``local.need_env`` in
    terraform/functions.tf, with ``fallback_ai`` turned on and no prices), pointed at the
    fake second provider. Only the functions with the need (the worker) get them."""
    return {
        "FALLBACK_AI_BASE_URL": base_url,
        "FALLBACK_AI_MODEL": FALLBACK_MODEL,
        "FALLBACK_AI_PROVIDER": "openai-compatible",
        "FALLBACK_RESERVE_S": "60",
        "CIRCUIT_FAILURES": "5",
        "CIRCUIT_WINDOW_S": "60",
        "CIRCUIT_COOLDOWN_S": "30",
    }


@dataclass
class Started:
    """A process group the rehearsal started."""

    name: str
    pid: int
    pgid: int
    port: int
    url: str
    started_at: float = field(repr=False)  # time.monotonic() before Popen
    cold_start_ms: float | None = None
    probe: str = ""
    probe_status: int | None = None


def build_page() -> None:
    """Build the example app into ``examples/web/dist`` (what ``make web`` does), so the
    rehearsal serves the current sources; its ``config.js`` is then replaced per run."""
    subprocess.run(
        [str(VITE), "build", str(WEB_DIR), "--logLevel", "warn"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )


class _PageHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class Rehearsal:
    """Start with ``start()``, stop with ``stop()`` (idempotent; safe from a signal)."""

    def __init__(self, *, redis_url: str, pg_admin_url: str, log_level: str = "INFO") -> None:
        self.redis_url = redis_url
        self.pg_admin_url = pg_admin_url
        self.log_level = log_level
        self.processes: list[Started] = []
        self._popen: dict[str, subprocess.Popen[bytes]] = {}
        self._servers: list[Any] = []
        self._stopped = threading.Event()
        self.database_url = ""
        self.prefix = f"rh{secrets.token_hex(4)}"
        self.secrets = {
            "QSTASH_TOKEN": "qstash-" + secrets.token_hex(16),
            "QSTASH_CURRENT_SIGNING_KEY": "sig_" + secrets.token_hex(30),
            "QSTASH_NEXT_SIGNING_KEY": "sig_" + secrets.token_hex(30),
            "UPSTASH_REDIS_REST_TOKEN": "upstash-" + secrets.token_hex(16),
            "AI_API_KEY": "mm-" + secrets.token_hex(16),
            "CURSOR_SECRET": secrets.token_hex(32),
            "FALLBACK_AI_API_KEY": "fb-" + secrets.token_hex(16),
        }
        # The optional needs turned on (shared.needs.OPTIONAL_NEEDS) => their plain
        # settings; the notice webhook stays off (there is no operator endpoint here).
        self.need_env: dict[Need, dict[str, str]] = {}
        self.issuer = Issuer(SigningKey.rsa(kid="rehearsal-1"), ISSUER, AUDIENCE)
        self.gateway_url = ""
        self.page_url = ""
        self.timings: dict[str, float] = {}

    # ---- start -------------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        (STATE_DIR / "logs").mkdir(parents=True)
        zips = build_packages()
        self.timings["package_s"] = time.monotonic() - t0
        dirs = self._unpack(zips)
        t1 = time.monotonic()
        venv = runtime_venv(next(iter(dirs.values())) / "requirements.txt")
        self.timings["venv_s"] = time.monotonic() - t1
        self.database_url = create_database(self.pg_admin_url, prefix="reel_rehearse")
        # What `make migrate` runs, against the rehearsal's database.
        subprocess.run(
            [sys.executable, "-m", "shared.db.migrate"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": self.database_url},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        env = self._start_services()
        t2 = time.monotonic()
        for spec in FUNCTIONS:
            self._start_function(spec, dirs[spec.name], venv, env)
        self.timings["functions_s"] = time.monotonic() - t2
        self._start_gateway()
        self._schedule_sweep(env)
        self._grant_demo_plan()
        self.timings["start_s"] = time.monotonic() - t0
        self._write_state()

    def _unpack(self, zips: Path) -> dict[str, Path]:
        dirs = {}
        for spec in FUNCTIONS:
            target = STATE_DIR / "functions" / spec.name
            with zipfile.ZipFile(zips / f"{spec.name}.zip") as archive:
                archive.extractall(target)
            dirs[spec.name] = target
        return dirs

    def _start_services(self) -> dict[str, str]:
        """The external services' local stand-ins; the functions' environment."""
        upstash = UpstashRestServer(self.redis_url, token=self.secrets["UPSTASH_REDIS_REST_TOKEN"])
        upstash.start()
        self._servers.append(upstash)
        idp = JwksServer(jwks([self.issuer.key])).__enter__()
        self._servers.append(idp)
        self.issuer.save(STATE_DIR / "issuer.json")
        minimax = FakeMiniMax(responder=answer_prompt).start()
        self._servers.append(minimax)
        fallback = FakeOpenAI(responder=answer_prompt)
        fallback.start()
        self._servers.append(fallback)
        self.need_env[Need.AI_FALLBACK] = fallback_env(fallback.base_url)
        qstash = QStashServer(
            token=self.secrets["QSTASH_TOKEN"],
            current_signing_key=self.secrets["QSTASH_CURRENT_SIGNING_KEY"],
            next_signing_key=self.secrets["QSTASH_NEXT_SIGNING_KEY"],
            backoff_scale=0.01,  # 0.12 s, 1.5 s, 18 s instead of 12 s, 2.5 min, 30 min
        ).start()
        self._servers.append(qstash)
        self.qstash = qstash
        page_port = free_port()
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.ports = {spec.name: free_port() for spec in FUNCTIONS}
        self.worker_url = f"http://127.0.0.1:{self.ports['worker']}"
        web = STATE_DIR / "web"
        build_page()
        shutil.copytree(PAGE_DIR, web)
        # The page's only configuration: where the API is (and one function's own URL).
        config = {
            "apiBase": self.gateway_url,
            "usageFunctionUrl": f"http://127.0.0.1:{self.ports['usage']}",
        }
        (web / "config.js").write_text(f"window.REEL_CONFIG = {json.dumps(config)};\n")
        handler = functools.partial(_PageHandler, directory=str(web))
        page = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
        page.daemon_threads = True
        threading.Thread(target=page.serve_forever, args=(0.1,), daemon=True).start()
        self._servers.append(page)
        # The page and the API are different origins, as in production (another host).
        self.page_url = f"http://localhost:{page_port}/"
        self.secrets["DATABASE_URL"] = self.database_url
        return production_env(
            minimax_url=minimax.url,
            upstash_url=upstash.url,
            qstash_url=qstash.url,
            worker_url=self.worker_url,
            jwks_url=idp.url,
            page_url=self.page_url,
            log_level=self.log_level,
            redis_key_prefix=self.prefix,
        )

    def function_env(self, spec: FunctionSpec, plain: dict[str, str]) -> dict[str, str]:
        """What Terraform gives ``spec``'s function (terraform/functions.tf): the plain
        variables, those of its optional needs that are on, ``APP_FUNCTION`` and only the
        secrets its needs mount (no Stripe keys here: the billing routes answer 503, as
        without Stripe configured)."""
        on = sorted(spec.needs & self.need_env.keys())
        names = {*spec.secrets, *(s for need in on for s in NEED_SECRETS[need])}
        mounted = {name: self.secrets[name] for name in sorted(names) if name in self.secrets}
        optional = {k: v for need in on for k, v in self.need_env[need].items()}
        return {**plain, **optional, "APP_FUNCTION": spec.name, **mounted}

    def _start_function(
        self, spec: FunctionSpec, source: Path, venv: Path, env: dict[str, str]
    ) -> None:
        port = self.ports[spec.name]
        # Only what Cloud Functions sets plus our configuration: nothing leaks from here.
        process_env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PORT": str(port),
            "K_SERVICE": spec.name,
            "FUNCTION_TARGET": spec.entry_point,
            "PYTHONUNBUFFERED": "1",
            **self.function_env(spec, env),
        }
        command = [
            str(venv / "bin" / "functions-framework"),
            "--target",
            spec.entry_point,
            "--source",
            str(source / "main.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        log = (STATE_DIR / "logs" / f"{spec.name}.log").open("wb")
        started_at = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=source,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, stopped as one
        )
        log.close()
        started = Started(
            spec.name, proc.pid, os.getpgid(proc.pid), port, f"http://127.0.0.1:{port}", started_at
        )
        self.processes.append(started)
        self._popen[spec.name] = proc
        self._probe(started, proc)

    def _probe(self, started: Started, proc: subprocess.Popen[bytes]) -> None:
        """Time from process start to the function's first answer to a real request."""
        method, path, body, headers, expected = self._probe_request(started.name)
        started.probe = f"{method} {path} -> {expected or 'any but 5xx'}"
        deadline = started.started_at + 60
        with httpx.Client(base_url=started.url, timeout=30) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{started.name} exited; see build/rehearse/logs")
                try:
                    response = client.request(method, path, content=body, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                started.cold_start_ms = (time.monotonic() - started.started_at) * 1000
                started.probe_status = response.status_code
                wrong = (
                    response.status_code >= 500
                    if expected == 0
                    else (response.status_code != expected)
                )
                if wrong:
                    raise RuntimeError(
                        f"{started.name}: probe {method} {path} answered "
                        f"{response.status_code}, expected {expected}: {response.text[:300]}"
                    )
                return
        raise RuntimeError(f"{started.name} did not answer within 60 s")

    def _probe_request(self, name: str) -> tuple[str, str, bytes | None, dict[str, str], int]:
        """One authenticated request per function: 200 where the contract allows one
        without earlier state, else the documented refusal (no plan, unknown id, no Stripe)."""
        user = f"probe-{secrets.token_hex(4)}"
        auth = {"Authorization": f"Bearer {self.issuer.mint(user)}"}
        admin = {"Authorization": f"Bearer {self.issuer.mint('probe-admin', admin=True)}"}
        js = {"Content-Type": "application/json"}
        unknown = str(uuid.uuid4())
        if name == "worker":
            url = self.worker_url + "/worker/sweep"
            signature = self.qstash.sign(b"{}", url)
            return "POST", "/worker/sweep", b"{}", {**js, "Upstash-Signature": signature}, 200
        brief = json.dumps({"brief": "probe", "platform": "tiktok"}).encode()
        regen = json.dumps({"draft_id": unknown, "mode": "full"}).encode()
        probes: dict[str, tuple[str, str, bytes | None, dict[str, str], int]] = {
            "create": ("POST", "/v1/create", brief, {**auth, **js}, 402),
            "regenerate": ("POST", "/v1/regenerate", regen, {**auth, **js}, 404),
            "generations": ("GET", f"/v1/generations/{unknown}", None, auth, 404),
            "drafts": ("GET", f"/v1/drafts/{unknown}", None, auth, 404),
            "library": ("GET", "/v1/library/assets", None, auth, 200),
            "usage": ("GET", "/v1/usage", None, auth, 200),
            "me": ("GET", "/v1/me/export", None, auth, 200),
            "admin": ("GET", "/v1/admin/costs", None, admin, 200),
            "billing": ("POST", "/v1/billing/portal", None, auth, 503),
            "stripe-webhook": ("POST", "/webhooks/stripe", b"{}", js, 503),
            "health": ("GET", "/readyz", None, {}, 200),
        }
        if name in probes:
            return probes[name]
        # A function added since (no probe written for it yet): an authenticated GET on its
        # first path; any answer but a 5xx shows it started (0 = "below 500").
        spec = next(f for f in FUNCTIONS if f.name == name)
        return (
            "GET",
            spec.paths[0].rstrip("/") + ("/" + unknown if spec.paths[0].endswith("/") else ""),
            None,
            auth,
            0,
        )

    def _start_gateway(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = STATE_DIR / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "temp" / sub).mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        backends = {p.name: p.url for p in self.processes}
        conf.write_text(render_nginx(backends, port=self.gateway_port, prefix=prefix))
        log = (STATE_DIR / "logs" / "nginx.log").open("wb")
        started_at = time.monotonic()
        proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        started = Started(
            "nginx",
            proc.pid,
            os.getpgid(proc.pid),
            self.gateway_port,
            self.gateway_url,
            started_at,
            probe="GET /healthz -> 200",
        )
        self.processes.append(started)
        self._popen["nginx"] = proc
        deadline = started_at + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("nginx exited; see build/rehearse/nginx/error.log")
            try:
                status = httpx.get(self.gateway_url + "/healthz", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            started.cold_start_ms = (time.monotonic() - started_at) * 1000
            started.probe_status = status
            return
        raise RuntimeError("nginx did not answer within 20 s")

    def _schedule_sweep(self, env: dict[str, str]) -> None:
        """The sweep schedule, created through the SDK as Terraform creates it in QStash."""
        from qstash import QStash

        client = QStash(self.secrets["QSTASH_TOKEN"], base_url=env["QSTASH_URL"])
        client.schedule.create(
            destination=self.worker_url + "/worker/sweep",
            cron=SWEEP_CRON,
            method="POST",
            content_type="application/json",
            body="{}",
            retries=0,
        )
        self.timings["sweep_scheduled_at"] = time.time()

    def _grant_demo_plan(self) -> None:
        admin = self.issuer.mint("rehearsal-admin", admin=True)
        response = httpx.post(
            self.gateway_url + "/v1/admin/subscriptions",
            json={"user_id": DEMO_USER, "plan": "standard"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        response.raise_for_status()
        self.demo_token = self.issuer.mint(DEMO_USER, ttl_s=8 * 3600)

    def _write_state(self) -> None:
        state = {
            "gateway_url": self.gateway_url,
            "page_url": self.page_url,
            "worker_url": self.worker_url,
            "issuer_file": str(STATE_DIR / "issuer.json"),
            "demo_user": DEMO_USER,
            "demo_token": self.demo_token,
            "orchestrator_pid": os.getpid(),
            "processes": [
                {k: v for k, v in asdict(p).items() if k != "started_at"} for p in self.processes
            ],
            "timings": self.timings,
        }
        STATE_FILE.write_text(json.dumps(state, indent=2))

    # ---- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        for proc in reversed(list(self._popen.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._popen.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for started in self.processes:  # children of the group (nginx's workers) too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pgid, signal.SIGKILL)
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                if isinstance(server, JwksServer):
                    server.__exit__(None, None, None)
                elif isinstance(server, http.server.HTTPServer):
                    server.shutdown()
                    server.server_close()
                else:
                    server.stop()
        if self.database_url:
            with contextlib.suppress(Exception):
                drop_database(self.pg_admin_url, self.database_url)
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def _servers() -> tuple[str, str]:
    """(Redis URL, Postgres admin URL): the real servers on 127.0.0.1 when they answer
    (``REHEARSE_REDIS_URL`` / ``REHEARSE_POSTGRES_ADMIN_URL`` override), else embedded."""
    data = BUILD / "rehearse-data"
    machine_redis, machine_pg = (
        "redis://127.0.0.1:6379/0",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    redis_url = os.environ.get("REHEARSE_REDIS_URL") or (
        machine_redis if redis_serves(machine_redis) else embedded_redis_url(data)
    )
    pg_url = os.environ.get("REHEARSE_POSTGRES_ADMIN_URL") or (
        machine_pg if postgres_serves(machine_pg) else embedded_postgres_url(data)
    )
    return redis_url, pg_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.rehearse", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    redis_url, pg_admin_url = _servers()
    rehearsal = Rehearsal(redis_url=redis_url, pg_admin_url=pg_admin_url, log_level=args.log_level)
    stop = threading.Event()
    up = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        if not up.is_set():
            raise KeyboardInterrupt  # abandon start-up; `finally` stops what already runs

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        try:
            rehearsal.start()
        except KeyboardInterrupt:
            return 130
        up.set()
        _print_banner(rehearsal)
        print(READY_LINE, flush=True)
        while not stop.wait(0.5):
            pass
        print("rehearse: stopping every process started", flush=True)
        return 0
    finally:
        rehearsal.stop()


def _print_banner(r: Rehearsal) -> None:
    print("\nrehearse: processes started (process start -> first answer to a real request)")
    for p in r.processes:
        print(f"  {p.name:15} pid {p.pid:<7} {p.url:24} {p.cold_start_ms:7.0f} ms  {p.probe}")
    print(
        f"\n  gateway  {r.gateway_url}/v1/…\n  page     {r.page_url}\n"
        f"  token    {r.demo_token}\n  (user {DEMO_USER}, Standard plan; more tokens: "
        f"python -m devtools.jwks_server mint --issuer-file {STATE_DIR / 'issuer.json'} USER)\n"
        f"  state    {STATE_FILE}\n\nCtrl-C stops everything.",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
