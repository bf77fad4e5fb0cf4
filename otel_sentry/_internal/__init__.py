"""Everything here is private: it may change in any release. The public API is what
``otel_sentry`` exports, and the ``otel_sentry.inbox`` and ``otel_sentry.testing`` modules."""
