"""The example FastAPI app with the contrib instrumentation applied by hand after ``init()``.

A user who already calls ``FastAPIInstrumentor.instrument_app(app)`` keeps doing so: FastAPI's
own telemetry sees the contrib middleware and steps aside, so each request has one server span.
"""

from __future__ import annotations

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from examples.fastapi_app.main import app

FastAPIInstrumentor.instrument_app(app)

__all__ = ["app"]
