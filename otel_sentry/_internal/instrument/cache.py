"""Redis as a cache: ``cache.get`` / ``cache.put`` / ``cache.remove`` spans around Redis commands.

The contrib redis instrumentation records every command as a ``db.redis`` span with all
arguments masked (``GET ?``), so no backend can tell a cache read from any other command, nor
a hit from a miss. This thin layer is ours because nothing upstream has it: it wraps redis-py's
``execute_command`` (sync and asyncio) *outside* the contrib wrapper, and for reads, writes and
deletes of keys that start with one of the configured prefixes opens a span with

- ``cache.operation``: ``get``, ``put`` or ``remove``;
- ``cache.key``: the keys (a list), ``cache.hit`` (reads), ``cache.item_size`` (bytes);
- ``server.address`` / ``server.port`` and ``network.peer.address`` / ``network.peer.port``.

The contrib command span becomes its child. Every other command costs one dict lookup.

    instrument_redis_cache(["cache:", "session:"])   # or otel_sentry.init(cache_prefixes=...)

Pipelines and cluster clients are not covered: their commands are not sent one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider

from otel_sentry._version import __version__

__all__ = ["CACHE_COMMANDS", "instrument_redis_cache", "uninstrument_redis_cache"]

# The instrumentation scope cache spans carry: what users filter by, kept across module moves.
_SCOPE = "otel_sentry.instrument.cache"

# Command -> (operation, where its keys are). MGET's partial result counts as a miss: the
# caller still has to compute what was missing.
_KEY = "key"  # args[1] only
_KEYS = "keys"  # every argument is a key
_PAIRS = "pairs"  # key, value, key, value ...
CACHE_COMMANDS: dict[str, tuple[str, str]] = {
    "GET": ("get", _KEY),
    "GETEX": ("get", _KEY),
    "GETDEL": ("get", _KEY),
    "MGET": ("get", _KEYS),
    "SET": ("put", _KEY),
    "SETEX": ("put", _KEY),
    "PSETEX": ("put", _KEY),
    "SETNX": ("put", _KEY),
    "MSET": ("put", _PAIRS),
    "DEL": ("remove", _KEYS),
    "UNLINK": ("remove", _KEYS),
}
"""The Redis commands that become cache spans when their keys match a prefix."""


class _State:
    __slots__ = ("prefixes", "tracer")

    def __init__(self) -> None:
        self.prefixes: tuple[str, ...] = ()
        self.tracer: Tracer | None = None


_state = _State()


def _text(key: object) -> str:
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key).decode("utf-8", "replace")
    return str(key)


def _size(value: object) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return len(str(value).encode("utf-8"))


def _plan(args: tuple[Any, ...]) -> tuple[str, list[str], object] | None:
    """(operation, keys, value written) when this command is a cache access, else None."""
    if len(args) < 2:
        return None
    command = args[0]
    entry = CACHE_COMMANDS.get(command) if isinstance(command, str) else None
    if entry is None:
        if not isinstance(command, str | bytes):
            return None
        command = _text(command).upper()
        entry = CACHE_COMMANDS.get(command)
        if entry is None:
            return None
    operation, layout = entry
    value: object = None
    if layout is _KEY:
        # The common case, kept to a type check and one C-level startswith.
        key = args[1]
        text = key if type(key) is str else _text(key)
        if not text.startswith(_state.prefixes):
            return None
        keys = [text]
        if operation == "put":
            # SET k v [...], SETNX k v; SETEX/PSETEX k ttl v.
            position = 3 if command in ("SETEX", "PSETEX") else 2
            value = args[position] if len(args) > position else None
        return operation, keys, value
    if layout is _KEYS:
        keys = [_text(k) for k in args[1:]]
    else:
        keys = [_text(k) for k in args[1::2]]
        value = args[2::2]
    prefixes = _state.prefixes
    if not any(k.startswith(prefixes) for k in keys):
        return None
    return operation, keys, value


def _start(instance: Any, operation: str, keys: list[str], value: object) -> Any:
    tracer = _state.tracer or trace.get_tracer(_SCOPE, __version__)
    attributes: dict[str, Any] = {"cache.operation": operation, "cache.key": keys}
    if value is not None:
        if isinstance(value, list | tuple):
            attributes["cache.item_size"] = sum(_size(v) for v in value)
        else:
            attributes["cache.item_size"] = _size(value)
    pool = getattr(instance, "connection_pool", None)
    params = getattr(pool, "connection_kwargs", None)
    if isinstance(params, dict):
        host, port = params.get("host"), params.get("port")
        if isinstance(host, str):
            attributes["server.address"] = attributes["network.peer.address"] = host
        if isinstance(port, int):
            attributes["server.port"] = attributes["network.peer.port"] = port
    return tracer.start_as_current_span(
        f"cache.{operation}", kind=SpanKind.INTERNAL, attributes=attributes
    )


def _record_result(span: Span, operation: str, result: object) -> None:
    if operation != "get" or not span.is_recording():
        return
    if isinstance(result, list):
        found = [v for v in result if v is not None]
        span.set_attribute("cache.hit", bool(result) and len(found) == len(result))
        if found:
            span.set_attribute("cache.item_size", sum(_size(v) for v in found))
    else:
        span.set_attribute("cache.hit", result is not None)
        if result is not None:
            span.set_attribute("cache.item_size", _size(result))


def _sync_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    plan = _plan(args)
    if plan is None:
        return wrapped(*args, **kwargs)
    operation, keys, value = plan
    with _start(instance, operation, keys, value) as span:
        result = wrapped(*args, **kwargs)
        _record_result(span, operation, result)
        return result


async def _async_wrapper(
    wrapped: Callable[..., Awaitable[Any]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    plan = _plan(args)
    if plan is None:
        return await wrapped(*args, **kwargs)
    operation, keys, value = plan
    with _start(instance, operation, keys, value) as span:
        result = await wrapped(*args, **kwargs)
        _record_result(span, operation, result)
        return result


def _targets() -> list[tuple[Any, Callable[..., Any]]]:
    import redis

    out: list[tuple[Any, Callable[..., Any]]] = [(redis.Redis, _sync_wrapper)]
    try:
        import redis.asyncio
    except ImportError:  # redis-py without asyncio support
        return out
    out.append((redis.asyncio.Redis, _async_wrapper))
    return out


def _is_ours(attribute: object, wrapper: Callable[..., Any]) -> bool:
    return getattr(attribute, "_self_wrapper", None) is wrapper


def instrument_redis_cache(
    prefixes: Sequence[str], tracer_provider: TracerProvider | None = None
) -> None:
    """Record reads, writes and deletes of keys starting with ``prefixes`` as cache spans.

    Enables the contrib redis instrumentation first if it is installed and not yet on, so that
    its command span nests inside the cache span. Calling again replaces the prefixes; an
    empty ``prefixes`` turns the cache spans off.
    """
    from wrapt import FunctionWrapper

    cleaned = tuple(p for p in prefixes if p)
    if not cleaned:
        uninstrument_redis_cache()
        return
    try:
        from opentelemetry.instrumentation.redis import RedisInstrumentor
    except ImportError:  # only the cache spans, without command spans beneath
        pass
    else:
        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider)
    _state.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
    _state.prefixes = cleaned
    for cls, wrapper in _targets():
        current = cls.__dict__["execute_command"]
        if not _is_ours(current, wrapper):
            cls.execute_command = FunctionWrapper(current, wrapper)


def uninstrument_redis_cache() -> None:
    """Stop recording cache spans; the contrib command spans stay as they are."""
    _state.prefixes = ()
    _state.tracer = None
    try:
        targets = _targets()
    except ImportError:
        return
    for cls, wrapper in targets:
        current = cls.__dict__["execute_command"]
        # Only our own outermost layer is removed; one another wrapper put on top stays, and
        # with no prefixes ours passes every command straight through.
        if _is_ours(current, wrapper):
            cls.execute_command = current.__wrapped__
