"""A small Flask app instrumented with ``otel_sentry.init()``: example and test target."""
