"""The TypeScript client (clients/ts): its generated types stay equal to what
openapi-typescript makes of openapi.json, its error-code union names every code the server
can answer, and its hand-written layer passes its own tests (node's test runner, against a
local fake of the API).

Node and the npm tools come from ``npm ci`` (``make test`` runs it before pytest).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.error_codes import server_codes

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "ts"
BIN = ROOT / "node_modules" / ".bin"
# The same flags as `make ts-client` (a drift between the two fails the first test).
GENERATE = ["openapi.json", "--default-non-nullable", "false"]


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci` (make test does it first)")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH (Node >= 20 is needed for the client's checks)")
    return str(path)


def test_generated_types_equal_the_committed_ones() -> None:
    made = subprocess.run(
        [_tool("openapi-typescript"), *GENERATE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    committed = (CLIENT / "src" / "schema.ts").read_text()
    assert made == committed, (
        "clients/ts/src/schema.ts differs from openapi.json: run `make ts-client` "
        "(`make openapi` runs it too)"
    )


def _client_codes() -> set[str]:
    text = (CLIENT / "src" / "errors.ts").read_text()
    lists = re.findall(r"export const [A-Z_]+_CODES = \[(.*?)\] as const;", text, re.S)
    named = {code for block in lists for code in re.findall(r'"([A-Z_]+)"', block)}
    return named | {"VALIDATION_FAILED"}


def test_the_error_union_names_every_code_the_server_answers() -> None:
    server = server_codes()
    assert {"COOLDOWN_ACTIVE", "INVALID_CURSOR", "SUBSCRIPTION_EXISTS"} <= server  # the scan works
    missing = server - _client_codes()
    assert not missing, f"clients/ts/src/errors.ts lacks {sorted(missing)}"


def test_the_hand_written_layer_passes_its_tests() -> None:
    out = ROOT / "build" / "clients-ts"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(
        [_tool("tsc"), "-p", str(CLIENT / "tsconfig.json")], cwd=ROOT, check=True, timeout=300
    )
    tests = sorted(str(p) for p in (out / "test").glob("*.test.js"))
    assert tests, "no compiled tests found"
    run = subprocess.run(
        ["node", "--test", *tests], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    summary = "\n".join(line for line in run.stdout.splitlines() if line.startswith("# "))
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"^# pass [1-9]", summary, re.M), summary
    assert "# fail 0" in summary, summary
