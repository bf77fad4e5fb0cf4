"""The Starlette example (no FastAPI). Run it with::

    SENTRY_DSN=... uvicorn examples.starlette_app.main:app
    SENTRY_DSN=... opentelemetry-instrument uvicorn examples.starlette_app.main:app

``otel_sentry.init()`` runs before Starlette is imported: the instrumentation replaces the
``Starlette`` class, so an app built from a class imported earlier would not be traced.
"""

from __future__ import annotations

import otel_sentry

otel_sentry.init()

# After init, so the app class is the instrumented one.
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

_ITEMS = {1: {"id": 1, "name": "widget"}, 2: {"id": 2, "name": "gadget"}}


class CheckoutError(RuntimeError):
    """A domain error the example raises on purpose."""


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _item(request: Request) -> dict[str, object]:
    item = _ITEMS.get(request.path_params["item_id"])
    if item is None:
        raise HTTPException(status_code=404, detail="no such item")
    return item


async def get_item(request: Request) -> JSONResponse:
    return JSONResponse(_item(request))


async def checkout(request: Request) -> JSONResponse:
    item = _item(request)
    if item["name"] == "gadget":
        raise CheckoutError(f"price service returned nothing for item {item['id']}")
    return JSONResponse({"item": item, "total": 9.99})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/items/{item_id:int}", get_item),
        Route("/checkout/{item_id:int}", checkout, methods=["POST"]),
    ]
)
