"""The TLS context for Sentry's ingest, from the options sentry_sdk users already pass.

``ca_certs`` (else ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, certifi's bundle) and a client
certificate from ``cert_file``/``key_file`` (else ``CLIENT_CERT_FILE``/``CLIENT_KEY_FILE``), as
sentry_sdk's urllib3 pool reads them. The wire sets ALPN on it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

import certifi

__all__ = ["client_context"]


def client_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=options.get("ca_certs")
        or os.environ.get("SSL_CERT_FILE")
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or certifi.where()
    )
    cert_file = options.get("cert_file") or os.environ.get("CLIENT_CERT_FILE")
    if cert_file:
        key_file = options.get("key_file") or os.environ.get("CLIENT_KEY_FILE")
        context.load_cert_chain(cert_file, key_file or None)
    return context
