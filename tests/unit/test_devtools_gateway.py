"""The rehearsal's nginx gateway and the API Gateway's OpenAPI document come from one
route table: same paths, same methods, same backends."""

from __future__ import annotations

import re
from pathlib import Path

from devtools.gateway import gateway_operations, render_nginx
from shared.api.registry import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "terraform" / "gateway" / "openapi2.yaml.tftpl"


def template_operations() -> dict[tuple[str, str], str]:
    """(path, METHOD) => backend name, read from the Terraform template."""
    ops: dict[tuple[str, str], str] = {}
    path = method = ""
    for line in TEMPLATE.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"  (/\S*):", line):
            path = m.group(1)
        elif m := re.fullmatch(r"    (get|post|patch|put|delete|options):", line):
            method = m.group(1).upper()
        elif m := re.search(r'address: \$\{backends\["([\w-]+)"\]\}', line):
            ops[(path, method)] = m.group(1)
    return ops


def test_gateway_operations_equal_the_api_gateway_document() -> None:
    ours = {(p.pattern, m): p.function for p in gateway_operations() for m in p.methods}
    assert ours == template_operations()


def test_the_worker_is_not_behind_the_gateway() -> None:
    assert all(not p.pattern.startswith("/worker/") for p in gateway_operations())


def test_nginx_config_proxies_each_path_to_its_function(tmp_path: Path) -> None:
    backends = {f.name: f"http://127.0.0.1:{9100 + i}" for i, f in enumerate(FUNCTIONS)}
    conf = render_nginx(backends, port=18080, prefix=tmp_path)
    assert "listen 127.0.0.1:18080;" in conf
    for path in gateway_operations():
        block = conf.split(f"location {path.location} {{", 1)[1].split("}\n        }", 1)[0]
        assert f"proxy_pass {backends[path.function]};" in block
        assert f"^({'|'.join(path.methods)})$" in block
    assert "location ~ ^/v1/drafts/[^/]+$ {" in conf
    assert "/worker/" not in conf
