"""The :class:`Inbox`: a local Sentry-compatible ingest server and the queries tests make on it.

It listens on a real socket, so anything that speaks to Sentry (sentry_sdk, the JS SDKs, an
OTLP exporter, a Collector) can be pointed at it unchanged, and a test then asserts on exactly
what arrived::

    with Inbox() as inbox:
        client = sentry_sdk.Client(dsn=inbox.dsn())
        ...
        [event] = [i.json for i in inbox.wait_for_items("event")]

``Inbox(tls=True)`` serves HTTPS as Sentry's SaaS ingest does: HTTP/2 to clients that pick ``h2``
over ALPN, HTTP/1.1 to the others, with a certificate signed by a CA made for this run::

    with Inbox(tls=True) as inbox:
        client = sentry_sdk.Client(dsn=inbox.dsn(), ca_certs=inbox.ca_file)
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

from . import api
from .envelope import EnvelopeError, parse_envelope
from .faults import Fault, FaultSwitch
from .handler import InboxHTTPServer
from .ingest import Ingest
from .persist import Archive
from .routes import Router
from .store import Counts, ReceivedEnvelope, ReceivedItem, Store
from .tls import Certificates, TLSUnavailableError
from .validate import Validator
from .view import Echo
from .wire import Reply, Request

__all__ = ["DEFAULT_PUBLIC_KEY", "Inbox"]

DEFAULT_PUBLIC_KEY = "0123456789abcdef0123456789abcdef"


class _Server(Protocol):
    """What the inbox needs of its plain or TLS server."""

    @property
    def port(self) -> int: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class Inbox:
    """A Sentry ingest on ``host:port`` (port 0 picks a free one) that records what it receives.

    ``db_path`` persists envelopes in SQLite and reloads them on start; ``keep_payloads=False``
    keeps counters only; ``echo`` is a stream that gets the live view of every arrival;
    ``validate`` (default: on when payloads are kept) runs Relay's normalizer on every event and
    transaction and records what it objects to in :attr:`problems`.

    ``tls=True`` serves HTTPS with a certificate for 127.0.0.1 and localhost signed by a CA made
    at start (its PEM at :attr:`ca_file`, removed on stop); ALPN offers HTTP/2 and HTTP/1.1, or
    HTTP/1.1 only with ``http2=False``. ``h2_max_streams`` is the concurrent streams an HTTP/2
    connection may carry (SETTINGS_MAX_CONCURRENT_STREAMS; 100, as Sentry's ingest).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_key: str = DEFAULT_PUBLIC_KEY,
        db_path: str | Path | None = None,
        keep_payloads: bool = True,
        echo: TextIO | None = None,
        validate: bool | None = None,
        tls: bool = False,
        http2: bool = True,
        h2_max_streams: int = 100,
    ) -> None:
        if h2_max_streams < 1:
            raise ValueError(f"Inbox(h2_max_streams=...) must be >= 1, got {h2_max_streams}")
        self.host = host
        self.requested_port = port
        self.public_key = public_key
        self.db_path = Path(db_path) if db_path is not None else None
        self.keep_payloads = keep_payloads
        self._store = Store(keep_payloads=keep_payloads)
        self._faults = FaultSwitch()
        self._echo = Echo(echo) if echo is not None else None
        check = keep_payloads if validate is None else validate
        self._validator = Validator() if check else None
        self.tls = tls
        self.http2 = http2
        self.h2_max_streams = h2_max_streams
        self._server: _Server | None = None
        self._certificates: Certificates | None = None
        self._archive: Archive | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Inbox:
        if self._server is not None:
            return self
        archive = Archive(self.db_path) if self.db_path is not None else None
        if archive is not None:
            # The file is the record: a restarted inbox shows it, not it plus what memory held.
            self._store.clear()
            self._restore(archive)
        ingest = Ingest(
            store=self._store,
            faults=self._faults,
            public_key=self.public_key,
            validator=self._validator,
            archive=archive,
            echo=self._echo,
        )
        router = Router(ingest, self._api)
        try:
            server = self._tls_server(router) if self.tls else self._plain_server(router)
            server.start()
        except BaseException:
            if archive is not None:
                archive.close()
            self._remove_certificates()
            raise
        self._archive = archive
        self._server = server
        return self

    def _plain_server(self, router: Router) -> _Server:
        return InboxHTTPServer((self.host, self.requested_port), router)

    def _tls_server(self, router: Router) -> _Server:
        # Imported here: the plain inbox needs neither h2 nor h11 (and Certificates, trustme).
        try:
            from .tls_server import TLSServer
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] not in ("h2", "h11", "hyperframe"):
                raise
            raise TLSUnavailableError(exc.name or "h2") from None

        hosts = ["127.0.0.1", "localhost"]
        if self.host not in ("0.0.0.0", "", "::"):
            hosts.append(self.host)
        self._certificates = Certificates(hosts)
        context = self._certificates.server_context(http2=self.http2)
        return TLSServer(
            (self.host, self.requested_port), router, context, max_streams=self.h2_max_streams
        )

    def stop(self) -> None:
        server, archive = self._server, self._archive
        self._server = self._archive = None
        if server is not None:
            server.close()
        if archive is not None:
            archive.close()
        self._remove_certificates()

    def _remove_certificates(self) -> None:
        certificates, self._certificates = self._certificates, None
        if certificates is not None:
            certificates.remove()

    def __enter__(self) -> Inbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _restore(self, archive: Archive) -> None:
        # Archived bodies were accepted (and checked) once: record them, without re-archiving.
        replay = Ingest(store=self._store, faults=self._faults, public_key=self.public_key)
        for stored in archive.load():
            try:
                envelope = parse_envelope(stored.body)
            except EnvelopeError as exc:
                self._store.add_problems([f"archive {archive.path}: unreadable envelope: {exc}"])
                continue
            received = ReceivedEnvelope(
                envelope, stored.received_at, stored.project_id, stored.path, stored.headers
            )
            replay.accept(received)

    def _api(self, request: Request) -> Reply:
        return api.handle(self, request)

    # -- addresses -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the inbox is not started: call inbox.start() or use `with Inbox()`")
        return self._server.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def dsn(self, project_id: int = 1) -> str:
        return self.url.replace("://", f"://{self.public_key}@", 1) + f"/{project_id}"

    @property
    def ca_file(self) -> str | None:
        """The PEM of the CA that signed this TLS inbox's certificate; None without TLS.

        It exists while the inbox runs (a new CA each start) in a private temporary directory.
        """
        return self._certificates.ca_file if self._certificates is not None else None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this TLS inbox (and nothing else)."""
        if self._certificates is None:
            raise RuntimeError(
                "inbox.ssl_context() needs a running Inbox(tls=True): "
                f"this one is {'running without TLS' if self.running else 'not started'}"
            )
        return self._certificates.client_context()

    # -- what arrived --------------------------------------------------------------------------

    @property
    def envelopes(self) -> list[ReceivedEnvelope]:
        """Accepted envelopes in arrival order (a snapshot)."""
        return self._store.envelopes()

    def items(self, type: str | None = None) -> list[ReceivedItem]:
        return self._store.items(type)

    def _payloads(self, type: str) -> list[dict[str, Any]]:
        return [i.json for i in self._store.items(type) if isinstance(i.json, dict)]

    def events(self) -> list[dict[str, Any]]:
        return self._payloads("event")

    def transactions(self) -> list[dict[str, Any]]:
        return self._payloads("transaction")

    def client_reports(self) -> list[dict[str, Any]]:
        return self._payloads("client_report")

    def logs(self) -> list[dict[str, Any]]:
        """Sentry log records, flattened out of their ``log`` container items."""
        return [
            r for c in self._payloads("log") for r in c.get("items") or [] if isinstance(r, dict)
        ]

    def spans(self) -> list[dict[str, Any]]:
        """Spans sent as ``span`` items (not those inside transactions), flattened."""
        spans: list[dict[str, Any]] = []
        for payload in self._payloads("span"):
            inner = payload.get("items")
            spans += (
                [s for s in inner if isinstance(s, dict)] if isinstance(inner, list) else [payload]
            )
        return spans

    def otlp_spans(self) -> list[dict[str, Any]]:
        return self._store.otlp_spans()

    def otlp_logs(self) -> list[dict[str, Any]]:
        return self._store.otlp_logs()

    @property
    def counts(self) -> Counts:
        return self._store.counts()

    @property
    def problems(self) -> list[str]:
        """Validation problems found in what arrived; a correct sender leaves this empty."""
        return self._store.problems()

    # -- waiting -------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[Inbox], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(inbox)`` holds, re-checked as things arrive; False on timeout."""
        return self._store.wait_for(lambda: predicate(self), timeout)

    def wait_for_items(self, type: str, count: int = 1, timeout: float = 5.0) -> list[ReceivedItem]:
        """All items of ``type`` once at least ``count`` arrived; TimeoutError says what did."""
        if not self.keep_payloads:
            raise RuntimeError("wait_for_items needs keep_payloads=True; use wait_for on counts")
        if self.wait_for(lambda inbox: len(inbox.items(type)) >= count, timeout):
            return self.items(type)
        got = len(self.items(type))
        raise TimeoutError(
            f"expected {count} {type!r} item(s) within {timeout:g}s but got {got}; "
            f"the inbox received {self.counts.summary()}"
        )

    def wait_for_otlp_spans(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        if self.wait_for(lambda inbox: len(inbox.otlp_spans()) >= count, timeout):
            return self.otlp_spans()
        raise TimeoutError(
            f"expected {count} OTLP span(s) within {timeout:g}s but got "
            f"{len(self.otlp_spans())}; the inbox received {self.counts.summary()}"
        )

    # -- control -------------------------------------------------------------------------------

    def set_fault(self, fault: Fault) -> None:
        self._faults.set(fault)

    def clear_fault(self) -> None:
        self._faults.set(None)

    @property
    def fault(self) -> Fault | None:
        return self._faults.current

    def clear(self) -> None:
        """Forget everything received (also in the SQLite archive); the fault stays."""
        self._store.clear()
        if self._archive is not None:
            self._archive.clear()
        elif self.db_path is not None and self.db_path.exists():
            archive = Archive(self.db_path)
            archive.clear()
            archive.close()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<Inbox {where} {self.counts.summary()}>"
