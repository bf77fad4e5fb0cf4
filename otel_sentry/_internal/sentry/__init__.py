"""Everything that knows Sentry's data model: sampling, propagation, span semantics, export."""
