"""A small aiohttp server app instrumented with ``otel_sentry.init()``: example and test target."""
