"""How envelope bodies are compressed: zstd by default, a batch at a time on the export thread.

The export thread compresses every transaction, and the compressors let go of the GIL for each
call. Beside a request thread running Python, getting it back costs up to the 5 ms switch
interval, so one call per envelope held the export thread to a few hundred transactions a
second on a busy host while a thousand arrived (BENCHMARKS.md, "Behind: the GIL, not the CPU").
zstandard's ``multi_compress_to_buffer`` compresses a whole batch of bodies in one call that lets
go of the GIL once: the export thread prepares a batch (:meth:`Compression.many`) and hands the
GIL back once per batch instead of once per envelope. At level 1, zstd also takes less CPU than
brotli quality 1 or gzip level 1 for bodies of the same size; it is what Relay itself sends
between Relays.

Sentry's ingest takes ``Content-Encoding: zstd`` (Relay since late 2024). An older self-hosted
Relay answers 400 or 415 to it: the transport then sends that envelope again in the fallback
encoding (sentry_sdk's choice: brotli when installed, else gzip), and once one is accepted that
way, zstd is off for the rest of the process (:meth:`Compression.give_up_zstd`).

Chosen by ``_experiments={"transport_compression_algo": ...}`` as with sentry_sdk ("zstd",
"br", "gzip"; anything else sends uncompressed) and ``transport_compression_level``; with
neither set, zstd level 1 when zstandard is installed (a base dependency on CPython).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Mapping
from typing import Any

try:  # sentry_sdk compresses with brotli when it is installed, as we do without zstandard
    import brotli
except ImportError:  # pragma: no cover
    brotli = None

try:
    import zstandard
except ImportError:  # pragma: no cover - a base dependency on CPython
    zstandard = None  # type: ignore[assignment]

__all__ = ["Compression"]

_log = logging.getLogger("otel_sentry")

# The batch is compressed in one call only with zstandard's C backend (not its cffi one, PyPy).
_MULTI = zstandard is not None and "multi_compress_to_buffer" in zstandard.backend_features


class Compression:
    """The encoding of envelope bodies, and the compressor for each thread that needs one.

    ``algo``/``level``: what sentry_sdk resolved from the options (``algo`` None or level 0:
    uncompressed); ``experiments``: the options' ``_experiments``, where the user's choice is.
    """

    def __init__(self, algo: str | None, level: int, experiments: Mapping[str, Any]) -> None:
        chosen = experiments.get("transport_compression_algo")
        level_given = (
            experiments.get("transport_compression_level") is not None
            or experiments.get("transport_zlib_compression_level") is not None
        )
        if algo in ("br", "gzip") and not level_given:
            level = 1  # at ~1 KiB within 15% of quality 4's size, at a third of the CPU
        # sentry_sdk's resolution: what a server that does not take zstd gets.
        self.fallback: tuple[str | None, int] = (algo if level else None, level)
        self.encoding, self.level = self.fallback
        wants_zstd = chosen == "zstd" or (chosen is None and not level_given)
        if wants_zstd and zstandard is not None:
            given = experiments.get("transport_compression_level")
            self.encoding, self.level = "zstd", int(given) if given is not None else 1
        elif chosen == "zstd":
            _log.warning(
                "otel-sentry: transport_compression_algo='zstd' needs the zstandard package "
                "(pip install zstandard); sending %s instead",
                self.encoding or "uncompressed",
            )
        self._zstd_level = self.level if self.encoding == "zstd" else 1
        self._local = threading.local()  # zstd compressors are not shared between threads

    @property
    def batches(self) -> bool:
        """Whether :meth:`many` compresses a batch in one call (else one call per body)."""
        return self.encoding == "zstd" and _MULTI

    def one(self, raw: bytes, encoding: str | None = None) -> bytes:
        """``raw`` in ``encoding`` (default: the current one)."""
        encoding = self.encoding if encoding is None else encoding
        if encoding == "zstd":
            return self._zstd().compress(raw)  # type: ignore[no-any-return]
        level = self.level if encoding == self.encoding else self.fallback[1]
        if encoding == "br" and brotli is not None:
            return brotli.compress(raw, quality=level)  # type: ignore[no-any-return]
        if encoding == "gzip":
            gzipped = zlib.compressobj(level, zlib.DEFLATED, 31)
            return gzipped.compress(raw) + gzipped.flush()
        return raw

    def many(self, raws: list[bytes]) -> list[bytes]:
        """Each of ``raws`` in zstd, compressed in one call that lets go of the GIL once."""
        if not raws:
            return []
        if self.batches:
            try:
                out = self._zstd().multi_compress_to_buffer(raws, threads=1)
                return [bytes(out[i]) for i in range(len(raws))]
            except (zstandard.ZstdError, ValueError, MemoryError):  # e.g. an empty body
                pass
        return [self.one(raw, "zstd") for raw in raws]

    def give_up_zstd(self, host: str, status: int) -> None:
        """The ingest refused zstd and took the fallback: send the fallback from now on."""
        if self.encoding != "zstd":
            return
        self.encoding, self.level = self.fallback
        _log.warning(
            "otel-sentry: Sentry at %s does not take zstd bodies (HTTP %d; Relay takes them "
            "since late 2024): sending %s from now on. Set "
            "_experiments={'transport_compression_algo': 'gzip'} to skip this probe.",
            host,
            status,
            self.encoding or "uncompressed",
        )

    def _zstd(self) -> Any:
        compressor = getattr(self._local, "zstd", None)
        if compressor is None:
            assert zstandard is not None
            compressor = self._local.zstd = zstandard.ZstdCompressor(level=self._zstd_level)
        return compressor
