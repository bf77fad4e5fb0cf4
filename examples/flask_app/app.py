"""The Flask example. Run it with::

    SENTRY_DSN=... flask --app examples.flask_app.app run                      # werkzeug
    SENTRY_DSN=... gunicorn -w 2 examples.flask_app.app:app                    # production
    SENTRY_DSN=... opentelemetry-instrument gunicorn -w 2 examples.flask_app.app:app

``otel_sentry.init()`` runs before Flask is imported: the instrumentation replaces the ``Flask``
class, so an app built from a class imported earlier would not be traced. Under
``opentelemetry-instrument`` the bare ``init()`` joins the launcher's setup.
"""

from __future__ import annotations

import otel_sentry

otel_sentry.init()

from flask import Flask, abort  # noqa: E402  (after init, so it gets instrumented)

app = Flask(__name__)

_ITEMS = {1: {"id": 1, "name": "widget"}, 2: {"id": 2, "name": "gadget"}}


class CheckoutError(RuntimeError):
    """A domain error the example raises on purpose."""


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/<int:item_id>")
def get_item(item_id: int) -> dict[str, object]:
    item = _ITEMS.get(item_id)
    if item is None:
        abort(404)
    return item


@app.post("/checkout/<int:item_id>")
def checkout(item_id: int) -> dict[str, object]:
    item = get_item(item_id)
    if item["name"] == "gadget":
        raise CheckoutError(f"price service returned nothing for item {item['id']}")
    return {"item": item, "total": 9.99}
