"""Vendor-neutral instrumentation: only the OpenTelemetry API, never sentry_sdk.

Everything here must work with any OpenTelemetry backend; Sentry-specific meaning is added
later, on export, by ``otel_sentry._internal.sentry``.
"""
