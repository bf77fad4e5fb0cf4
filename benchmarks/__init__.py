"""Overhead and delivery benchmarks: otel-sentry side by side with the setups people use today.

Every setup runs in its own process against the same FastAPI app; a local ingest in a separate
process counts what arrives. Results are ratios to anchors measured in the same run, because a
shared 2-core machine is too noisy for absolute targets::

    python -m benchmarks.run --quick      # smoke run of every setup
    python -m benchmarks.run              # full run; rewrites a section of BENCHMARKS.md
"""
