"""``make dev``: the example page it serves, and the origins it allows by default."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from devtools.local_server import with_static
from scripts.dev_server import development_origins, example_dir, welcome


def _api(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"api:" + environ["PATH_INFO"].encode()]


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "web"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<h1>page</h1>")
    (site / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for the page")
    return site


def test_the_page_its_files_and_nothing_outside(tmp_path: Path) -> None:
    client = Client(with_static(_api, "/example/", _site(tmp_path)))
    page = client.get("/example/")
    assert page.status_code == 200
    assert page.text == "<h1>page</h1>"
    assert page.headers["Content-Type"].startswith("text/html")
    script = client.get("/example/assets/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    assert client.get("/example").headers["Location"].endswith("/example/")
    assert client.get("/example/../secret.txt").status_code == 404
    assert client.get("/example/%2e%2e/secret.txt").status_code == 404
    assert client.get("/example/missing.js").status_code == 404
    assert client.get("/v1/usage").text == "api:/v1/usage"  # everything else: the API
    assert client.post("/example/").text == "api:/example/"


def test_the_built_app_is_served_when_there_is_one(tmp_path: Path) -> None:
    web = tmp_path / "examples" / "web"
    web.mkdir(parents=True)
    (web / "index.html").write_text("sources")
    assert example_dir(tmp_path) == web
    (web / "dist").mkdir()
    assert example_dir(tmp_path) == web  # an empty dist/ is not a build
    (web / "dist" / "index.html").write_text("built")
    assert example_dir(tmp_path) == web / "dist"


def test_the_page_origin_is_allowed_by_default() -> None:
    origins = development_origins(8080).split(",")
    assert "http://127.0.0.1:8080" in origins
    assert "http://localhost:8080" in origins
    assert "http://localhost:5173" in origins
    printed = welcome("http://127.0.0.1:8080", "dev", "standard", "T0K", tuple(origins))
    assert "export TOKEN=T0K\nAPI=http://127.0.0.1:8080\n" in printed
    assert "http://127.0.0.1:8080/example/" in printed
    assert "Standard plan" in printed
