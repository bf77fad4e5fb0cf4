"""The TLS inbox's certificates: a CA made for one inbox run, and the server certificate it signs.

Sentry's SaaS ingest is HTTPS, and HTTP/2 exists in practice only over TLS (ALPN ``h2``), so a
sender's HTTP/2 path can be tested only against a TLS server. The CA is made by trustme when the
inbox starts and its PEM is written to a private temporary directory removed on stop: nothing
secret is ever committed or reused, and a client proves it trusts *this* inbox by loading the
file::

    certificates = Certificates(["127.0.0.1", "localhost"])
    client = sentry_sdk.Client(dsn=..., ca_certs=certificates.ca_file)
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ALPN_HTTP1", "ALPN_HTTP2", "Certificates", "TLSUnavailableError"]

ALPN_HTTP2 = "h2"
ALPN_HTTP1 = "http/1.1"


class TLSUnavailableError(RuntimeError):
    """``Inbox(tls=True)`` without the ``inbox`` extra's trustme, h2 or h11."""

    def __init__(self, module: str) -> None:
        super().__init__(
            f"the TLS inbox needs {module}, which is not installed: "
            "pip install 'otel-sentry[inbox]'"
        )


class Certificates:
    """A fresh CA, a server certificate for ``hosts``, and the CA's PEM file for clients.

    ``ca_file`` exists until :meth:`remove`; the keys live in memory only.
    """

    def __init__(self, hosts: Iterable[str]) -> None:
        try:
            import trustme
        except ImportError:
            raise TLSUnavailableError("trustme") from None
        self._ca = trustme.CA(organization_name="otel-sentry inbox")
        self._server_cert = self._ca.issue_cert(*dict.fromkeys(hosts))
        self._directory = Path(tempfile.mkdtemp(prefix="otel-sentry-inbox-tls-"))
        self.ca_file = str(self._directory / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)

    @property
    def directory(self) -> Path:
        """The private temporary directory holding :attr:`ca_file`."""
        return self._directory

    def server_context(self, http2: bool) -> ssl.SSLContext:
        """The server side: offers ``h2`` then ``http/1.1`` over ALPN, or ``http/1.1`` only."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # RFC 9113 section 9.2: HTTP/2 over TLS needs TLS 1.2 or later.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server_cert.configure_cert(context)
        context.set_alpn_protocols([ALPN_HTTP2, ALPN_HTTP1] if http2 else [ALPN_HTTP1])
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (set ALPN on it to pick a protocol)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def remove(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)
