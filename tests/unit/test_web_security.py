"""The playground refuses odd paths cleanly and carries browser hardening headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openevi.web import router as web
from openevi.web.security_headers import content_security_policy


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>playground</title>")
    (static / "assets" / "app-1234.js").write_text("console.log(1)")
    monkeypatch.setattr(web, "STATIC_DIR", static)
    app = FastAPI()
    app.include_router(web.router)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "path",
    [
        "/playground/%00",
        "/playground/assets/%00.js",
        "/playground/a%00b",
        "/playground/" + "a" * 5000,
        "/playground/" + "a" * 300 + ".js",
        "/playground/" + "/".join(["abcdefgh"] * 600),
    ],
)
def test_odd_paths_are_404_not_500(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, (response.status_code, response.text[:200])


@pytest.mark.parametrize("path", ["/playground", "/playground/", "/playground/assets/app-1234.js", "/playground/x.js"])
def test_playground_responses_carry_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["object-src"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def test_public_url_origin_is_allowed_for_media_and_fetches() -> None:
    csp = content_security_policy("https://voice.example.org/base/path")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert "https://voice.example.org" in directives["media-src"]
    assert "https://voice.example.org" in directives["connect-src"]
    assert "https://voice.example.org" not in directives["script-src"]
    assert content_security_policy("javascript:alert(1)") == content_security_policy(None)
