"""The playground router: `/` redirects, the built page and its assets are served, nothing else leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openevi.web import router as web


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>playground</title>")
    (static / "assets" / "app-1234.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside")
    monkeypatch.setattr(web, "STATIC_DIR", static)
    app = FastAPI()
    app.include_router(web.router)
    return TestClient(app)


def test_root_redirects_to_the_playground(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/playground/"


@pytest.mark.parametrize("path", ["/playground", "/playground/", "/playground/index.html", "/playground/history"])
def test_the_page_is_served_and_revalidated(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "playground" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_cached_for_good(client: TestClient) -> None:
    response = client.get("/playground/assets/app-1234.js")
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]


@pytest.mark.parametrize(
    "path", ["/playground/assets/missing.js", "/playground/..%2Fsecret.txt", "/playground/%2e%2e/secret.txt"]
)
def test_missing_files_and_escapes_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "outside" not in response.text


def test_an_unbuilt_playground_says_how_to_build_it(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "static" / "index.html").unlink()
    response = client.get("/playground/")
    assert response.status_code == 404
    assert "npm --prefix web" in response.text
