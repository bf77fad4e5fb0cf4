"""A small Starlette app (no FastAPI) with ``otel_sentry.init()``: example and test target."""
