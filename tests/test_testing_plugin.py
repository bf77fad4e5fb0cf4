"""Our own pytest plugin, used the way a user's suite would use it on the example app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from otel_sentry.testing import Capture

pytestmark = pytest.mark.usefixtures("fresh")


async def _call(app: Any, method: str, path: str) -> int:
    # No instrumentation on this client side: it plays the browser, not part of the service.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.request(method, path)).status_code


@pytest.mark.anyio
async def test_checkout_error_is_one_issue_on_its_transaction(otel_sentry_capture: Capture) -> None:
    from examples.fastapi_app.main import app

    assert await _call(app, "POST", "/checkout/2") == 500
    error = otel_sentry_capture.one_error("CheckoutError")
    txn = otel_sentry_capture.transaction("POST /checkout/{item_id}")
    otel_sentry_capture.assert_linked(error, txn)
    assert txn["contexts"]["trace"]["status"] == "internal_error"


@pytest.mark.anyio
async def test_capture_starts_empty_and_404s_are_noise(otel_sentry_capture: Capture) -> None:
    from examples.fastapi_app.main import app

    assert otel_sentry_capture.envelopes == []
    assert await _call(app, "GET", "/items/999") == 404
    assert await _call(app, "GET", "/items/1") == 200
    # Exactly one: the 404's transaction is dropped by the default noise filters.
    txn = otel_sentry_capture.transaction("GET /items/{item_id}")
    assert txn["contexts"]["trace"]["status"] == "ok"
    assert otel_sentry_capture.errors == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
