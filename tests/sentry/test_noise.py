"""Noise filters: health checks, CORS preflights and 404s never reach Sentry unless asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from otel_sentry._internal.sentry.noise import NoiseFilter
from otel_sentry.testing import Capture

pytestmark = pytest.mark.usefixtures("fresh")


def _app() -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 999:
            raise HTTPException(status_code=404)
        return {"id": item_id}

    return app


async def _requests(app: Any) -> list[int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        preflight = {"Origin": "http://web.test", "Access-Control-Request-Method": "GET"}
        return [
            (await client.get("/health")).status_code,
            (await client.get("/api/readyz")).status_code,
            (await client.options("/items/1", headers=preflight)).status_code,
            (await client.get("/items/999")).status_code,
            (await client.get("/items/1")).status_code,
        ]


def test_noise_is_dropped_by_default(otel_sentry_capture: Capture) -> None:
    assert asyncio.run(_requests(_app())) == [200, 200, 405, 404, 200]
    names = [
        (t["transaction"], t["contexts"]["trace"]["status"])
        for t in otel_sentry_capture.transactions
    ]
    assert names == [("GET /items/{item_id}", "ok")]


@pytest.fixture
def keep_noise(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OTEL_SENTRY_NOISE_FILTERS", "none")
    yield


def test_noise_filters_none_keeps_everything(
    keep_noise: None, otel_sentry_capture: Capture
) -> None:
    asyncio.run(_requests(_app()))
    names = sorted(t["transaction"] for t in otel_sentry_capture.transactions)
    assert len(names) == 5
    assert "GET /health" in names and "GET /api/readyz" in names
    assert names.count("GET /items/{item_id}") == 2
    assert any(n.startswith("OPTIONS") for n in names)


def test_host_header_errors_are_noise() -> None:
    event = {"exception": {"values": [{"type": "DisallowedHost", "value": "Invalid HTTP_HOST"}]}}
    assert NoiseFilter(("host_header",)).drops_event(event, {})
    assert NoiseFilter(("host_header",)).drops_event(
        {"logger": "django.security.DisallowedHost"}, {}
    )
    assert not NoiseFilter(()).drops_event(event, {})
    assert not NoiseFilter(("host_header",)).drops_event(
        {"exception": {"values": [{"type": "E"}]}}, {}
    )


def test_sampling_rules_follow_the_enabled_filters() -> None:
    rules = NoiseFilter(("health", "preflight")).sampling_rules()
    assert ("/health", 0.0) in rules and ("OPTIONS *", 0.0) in rules
    assert NoiseFilter(()).sampling_rules() == ()
