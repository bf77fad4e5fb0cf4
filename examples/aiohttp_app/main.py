"""The aiohttp example, served by aiohttp's own server. Run it with::

    SENTRY_DSN=... python -m examples.aiohttp_app.main --port 8080
    SENTRY_DSN=... opentelemetry-instrument python -m examples.aiohttp_app.main --port 8080
    SENTRY_DSN=... opentelemetry-instrument python -m aiohttp.web -P 8080 \
        examples.aiohttp_app.main:make_app

``otel_sentry.init()`` runs before the application is built: the instrumentation replaces
``aiohttp.web.Application``, so an app built before it would not be traced.
"""

from __future__ import annotations

import argparse

import otel_sentry

otel_sentry.init()

from aiohttp import web  # noqa: E402  (after init, so the app class is the instrumented one)

_ITEMS = {1: {"id": 1, "name": "widget"}, 2: {"id": 2, "name": "gadget"}}


class CheckoutError(RuntimeError):
    """A domain error the example raises on purpose."""


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _item(request: web.Request) -> dict[str, object]:
    item = _ITEMS.get(int(request.match_info["item_id"]))
    if item is None:
        raise web.HTTPNotFound(text="no such item")
    return item


async def get_item(request: web.Request) -> web.Response:
    return web.json_response(_item(request))


async def checkout(request: web.Request) -> web.Response:
    item = _item(request)
    if item["name"] == "gadget":
        raise CheckoutError(f"price service returned nothing for item {item['id']}")
    return web.json_response({"item": item, "total": 9.99})


def make_app(argv: list[str] | None = None) -> web.Application:
    """The application; ``python -m aiohttp.web`` passes the arguments it did not read."""
    app = web.Application()
    app.add_routes(
        [
            web.get("/health", health),
            web.get(r"/items/{item_id:\d+}", get_item),
            web.post(r"/checkout/{item_id:\d+}", checkout),
        ]
    )
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=None)
