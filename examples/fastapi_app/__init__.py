"""A small FastAPI service instrumented with ``otel_sentry.init()``: demo and test target."""
