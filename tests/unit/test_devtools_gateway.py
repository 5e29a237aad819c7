"""The rehearsal's nginx gateway and the API Gateway's OpenAPI document come from one
route table: same paths, same methods, same backends. (The committed document, rendered
as Terraform renders it and parsed as API Gateway parses it, is checked in
tests/integration/test_cloud_documents.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from devtools.gateway import gateway_document, gateway_operations, render_nginx
from shared.registry import FUNCTIONS


def test_gateway_operations_equal_the_api_gateway_document() -> None:
    backends = {f.name: f"https://{f.name}.example" for f in FUNCTIONS}
    doc = yaml.safe_load(yaml.safe_dump(gateway_document(backends)))
    documented = {
        (pattern, method.upper()): op["x-google-backend"]["address"]
        for pattern, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }
    ours = {(p.pattern, m): backends[p.function] for p in gateway_operations() for m in p.methods}
    assert ours == documented


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
