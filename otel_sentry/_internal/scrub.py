"""The one scrubber: every exit sends its data through here before it leaves the process.

Sentry events, breadcrumbs and transactions, spans to any OTLP exporter, log fields and LLM
content all go through the same :class:`Scrubber`, so a rule added here holds everywhere. Two
kinds of rule, both applied at any depth:

- by key: the value under a key that names a secret (``password``, ``api-key``,
  ``Authorization``, ``session_id``...) is replaced, whatever it is. Keys are compared case- and
  separator-insensitively, in mappings and in ``key=value`` / ``"key": "value"`` pairs inside
  strings (query strings, form bodies, log messages, URLs);
- by shape: ``Bearer ...`` and ``Basic ...`` credentials, JWTs, ``sk-...`` / ``sk-ant-...`` keys,
  AWS access keys, credentials embedded in URLs (DSNs included) and Luhn-valid card numbers are
  replaced wherever they appear, leaving the rest of the string as it was.

Only the secret is replaced, by Sentry's own marker ``[Filtered]``; its neighbours stay. Without
``send_default_pii`` emails, client IP addresses and cookies are treated as secrets too.

    >>> scrub_text("GET /cb?code=42&token=abc123 user=ada")
    'GET /cb?code=42&token=[Filtered] user=ada'
    >>> scrub_mapping({"headers": {"X-Api-Key": "k1", "Accept": "*/*"}})
    {'headers': {'X-Api-Key': '[Filtered]', 'Accept': '*/*'}}

Cost matters on the span path: a string is first checked by one compiled screen; only strings
that contain a suspicious word or shape go through the real rules, and key verdicts are cached.
Nothing is copied unless something was replaced.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "FILTERED",
    "ScrubCallback",
    "Scrubber",
    "configure",
    "current",
    "scrub_mapping",
    "scrub_text",
    "scrub_value",
]

FILTERED = "[Filtered]"

ScrubCallback = Callable[[str | None, Any], Any]

# Compared with the key lowercased and stripped of everything but letters and digits, so
# ``X-Api-Key``, ``api_key`` and ``apiKey`` are all ``xapikey`` / ``apikey``.
_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "authorization",
    "authtoken",
    "credential",
    "cookie",
    "session",
    "sessid",
    "csrf",
    "xsrf",
    "jwt",
    "bearer",
    "creditcard",
    "cardnumber",
    "ccnumber",
    "cvv",
    "cvc",
)
# Too short to match inside other words (``process`` contains ``ssn``): whole words only.
_SECRET_WORDS = ("pwd", "dsn", "ssn", "auth", "pin", "otp", "sid")
# Keys that contain a secret word but hold counts or names: LLM token usage, tokenizers,
# GenAI time to first token.
# Identifiers Sentry links by: never secrets, and always hex, where one in ~50,000 span ids is
# all decimal digits that pass the card rule (a filtered id breaks the trace: Relay rejects it).
_IDS = frozenset({"traceid", "spanid", "parentspanid", "eventid", "segmentid", "profilerid"})
_NOT_SECRET = re.compile(r"token(?:s|count|izer|type|usage|limit)|tofirsttoken")
# Personal data that only goes with send_default_pii.
_PII_SUBSTRINGS = (
    "email",
    "ipaddress",
    "clientaddress",
    "clientip",
    "remoteaddr",
    "forwardedfor",
    "realip",
    "peerip",
    "sockpeeraddr",
)
_PII_WORDS = ("ip",)

_NONE, _SECRET, _PII, _ALLOWED = 0, 1, 2, 3

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]")

# Value shapes that are credentials wherever they appear.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/\-]{6,}=*")
_BASIC = re.compile(r"(?i)\b(basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*")
_API_KEY = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}"  # OpenAI sk-..., sk-proj-..., Anthropic sk-ant-...
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b"  # AWS access key ids
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s:@?#\"']*)(?::([^/\s@?#\"']*))?@")
_CARD = re.compile(r"(?<![\w.])[3-6](?:[ \-]?\d){12,18}(?![\w.])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

# The screen: stems that every secret rule needs somewhere in the (lowercased) text. A string
# without any of them, the common case, costs one regex search; a hit only means "look closer".
_SECRET_STEMS = (
    *("pass", "secret", "token", "key", "auth", "cookie", "sess", "csrf", "xsrf", "jwt"),
    *("bearer", "basic", "card", "cvv", "cvc", "ssn", "pwd", "dsn"),
    *("credential", "eyj", "sk-", "sk_", "rk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    *("github_pat", "xox", "aiza", "akia", "asia", "abia", "acca", "@"),
    # Short words matter only as keys in text ("pin=1234"), and are common inside other words.
    *(w + sep for w in ("pin", "otp", "sid") for sep in ("=", ":", '"', "'", " ")),
)
_PII_STEMS = (
    *("email", "addr", "forwarded", "realip", "clientip", "peerip"),
    *("ip" + sep for sep in ("=", ":", '"', "'", " ")),
)
_CARD_SCREEN = r"[3-6](?:[ \-]?\d){12}"
_KEY_SEPARATORS = r"[\-_. ]?"
_MAX_DEPTH = 64
_CACHE_MAX = 4096
_CACHE_STR_MAX = 256


def _flexible(term: str) -> str:
    """A term as it may be spelled in text: ``apikey`` also matches ``api-key`` and ``API_KEY``."""
    return _KEY_SEPARATORS.join(re.escape(c) for c in term)


def _normalize(key: str) -> str:
    return _NON_ALNUM.sub("", key.lower())


def _trie(words: Sequence[str]) -> str:
    """An alternation factored by first letter: sre tries far fewer branches per position."""
    heads: dict[str, list[str]] = {}
    for word in words:
        heads.setdefault(word[0], []).append(word[1:])
    parts = []
    for head, tails in sorted(heads.items()):
        if "" in tails:
            parts.append(re.escape(head))
        elif len(tails) == 1:
            parts.append(re.escape(head) + re.escape(tails[0]))
        else:
            parts.append(re.escape(head) + "(?:" + _trie(tails) + ")")
    return "|".join(parts)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Scrubber:
    """Compiled rules for one configuration; build it once (``init()`` does) and reuse it.

    ``extra_keys`` adds key terms (matched like the built-in ones, as substrings of the
    normalized key); ``patterns`` are regular expressions whose matches are replaced in every
    string; ``allow_keys`` are keys whose values are sent as they are (normalized, exact);
    ``callback(key, value)`` runs on every value after the built-in rules and returns what to
    send instead (or the value itself); ``send_default_pii`` lets emails, IPs and cookies through.
    """

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        allow_keys: Iterable[str] = (),
        callback: ScrubCallback | None = None,
        send_default_pii: bool = False,
    ) -> None:
        self.send_default_pii = send_default_pii
        self.callback = callback
        extra = tuple(t for t in (_normalize(k) for k in extra_keys) if t)
        self._substrings = _SECRET_SUBSTRINGS + extra
        self._pii_substrings = () if send_default_pii else _PII_SUBSTRINGS
        self._pii_words = () if send_default_pii else _PII_WORDS
        self._allow = frozenset(_normalize(k) for k in allow_keys) | _IDS
        self._patterns = tuple(p if isinstance(p, re.Pattern) else re.compile(p) for p in patterns)
        substrings = "|".join(_flexible(t) for t in (*self._substrings, *self._pii_substrings))
        words = "|".join(re.escape(w) for w in (*_SECRET_WORDS, *self._pii_words))
        # A key in text: any run of key characters containing a term, then ``=`` or ``:``.
        self._kv = re.compile(
            r"(?i)(?<![\w.\-])(?P<key>[\w.\-]*?(?:" + substrings + r")[\w.\-]*"
            r"|(?:[\w.\-]*[._\-])?(?:" + words + r")(?:[._\-][\w.\-]*)?)"
            r"(?P<kq>[\"']?)(?P<sep>\s*[=:]\s*)"
            r"(?:(?P<q>[\"'])(?P<qval>[^\"'\\]*(?:\\.[^\"'\\]*)*)|(?P<val>[^\s&;,\"'<>)}\]]+))"
        )
        stems = {*_SECRET_STEMS, *(t[:4] for t in extra)}
        if not send_default_pii:
            stems.update(_PII_STEMS)
        self._screen = re.compile("(?:" + _trie(sorted(stems)) + ")|" + _CARD_SCREEN)
        self._keys: dict[str, int] = {}
        self._texts: dict[str, str] = {}

    # -- keys ----------------------------------------------------------------------------------
    def key_kind(self, key: str) -> int:
        kind = self._keys.get(key)
        if kind is None:
            kind = self._classify(key)
            if len(self._keys) >= _CACHE_MAX:
                self._keys.clear()
            self._keys[key] = kind
        return kind

    def is_sensitive_key(self, key: str) -> bool:
        """True when the value under ``key`` is replaced."""
        return self.key_kind(key) in (_SECRET, _PII)

    def _classify(self, key: str) -> int:
        norm = _normalize(key)
        if norm in self._allow:
            return _ALLOWED
        for term in self._substrings:
            if term in norm:
                if term == "token" and _NOT_SECRET.search(norm) and norm.count("token") == 1:
                    continue
                return _SECRET
        words = [w.lower() for w in _WORD.findall(key)]
        if any(w in _SECRET_WORDS for w in words):
            return _SECRET
        if any(term in norm for term in self._pii_substrings) or any(
            w in self._pii_words for w in words
        ):
            return _PII
        return _NONE

    # -- strings ------------------------------------------------------------------------------
    def scrub_text(self, text: str) -> str:
        """``text`` with every secret in it replaced; the same object when nothing matched."""
        cached = self._texts.get(text)
        if cached is not None:
            return cached
        out = text
        if self._screen.search(text.lower()) is not None:
            out = self._scrub_text(text)
        if self._patterns:
            for pattern in self._patterns:
                out = pattern.sub(FILTERED, out)
        if out == text:
            out = text
        if len(text) <= _CACHE_STR_MAX:
            if len(self._texts) >= _CACHE_MAX:
                self._texts.clear()
            self._texts[text] = out
        return out

    def _scrub_text(self, text: str) -> str:
        out = _URL_USERINFO.sub(_userinfo, text)
        out = _BEARER.sub(r"\1\2" + FILTERED, out)
        out = _BASIC.sub(_basic, out)
        out = _JWT.sub(FILTERED, out)
        out = _API_KEY.sub(FILTERED, out)
        out = _CARD.sub(_card, out)
        if not self.send_default_pii and "@" in out:
            out = _EMAIL.sub(FILTERED, out)
        return self._kv.sub(self._pair, out)

    def _pair(self, match: re.Match[str]) -> str:
        if self.key_kind(match.group("key")) not in (_SECRET, _PII):
            return match.group(0)
        value = match.group("qval") if match.group("q") else match.group("val")
        if not value or value == FILTERED:
            return match.group(0)
        start = match.start("qval") if match.group("q") else match.start("val")
        whole = match.group(0)
        offset = start - match.start(0)
        return whole[:offset] + FILTERED + whole[offset + len(value) :]

    # -- structures ---------------------------------------------------------------------------
    def scrub_value(self, value: Any, key: str | None = None) -> Any:
        """Any JSON-like value, at any depth; containers are copied only where something changed."""
        return self._value(value, key, 0)

    def scrub_mapping(self, mapping: Mapping[str, Any]) -> Mapping[str, Any]:
        """A mapping (attributes, log fields, an event): the same object when nothing matched."""
        out: Mapping[str, Any] = self._mapping(mapping, 0)
        return out

    def _value(self, value: Any, key: str | None, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            return FILTERED
        kind = type(value)
        if kind is str:
            new: Any = self.scrub_text(value)
        elif value is None or kind is int or kind is float or kind is bool:
            new = value
        elif kind is dict or isinstance(value, Mapping):
            new = self._mapping(value, depth + 1)
        elif kind is list or kind is tuple:
            new = self._sequence(value, depth + 1)
        elif isinstance(value, (bytes, bytearray)):
            new = value
        else:
            # Objects end up as str() in JSON (``default=str``): scrub what would be sent.
            text = str(value)
            scrubbed = self.scrub_text(text)
            new = value if scrubbed is text else scrubbed
        if self.callback is not None:
            new = self.callback(key, new)
        return new

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> Mapping[Any, Any]:
        if depth > _MAX_DEPTH:
            return {"": FILTERED}
        out: dict[Any, Any] | None = None
        # The span path runs through here: cached verdicts are read inline, not via calls.
        keys, texts, callback = self._keys, self._texts, self.callback
        for key, value in mapping.items():
            if type(key) is str:
                kind = keys.get(key)
                if kind is None:
                    kind = self.key_kind(key)
            else:
                kind = _NONE
            if kind == _ALLOWED:
                continue
            if kind in (_SECRET, _PII):
                new = value if value is None or value == "" or type(value) is bool else FILTERED
                if callback is not None:
                    new = callback(key, new)
            elif type(value) is str and callback is None:
                new = texts.get(value)
                if new is None:
                    new = self.scrub_text(value)
            else:
                new = self._value(value, key if type(key) is str else None, depth)
            if new is not value:
                if out is None:
                    out = dict(mapping)
                out[key] = new
        return mapping if out is None else out

    def _sequence(self, seq: Sequence[Any], depth: int) -> Sequence[Any]:
        if depth > _MAX_DEPTH:
            return [FILTERED]
        out: list[Any] | None = None
        for i, item in enumerate(seq):
            new = self._value(item, None, depth)
            if new is not item:
                if out is None:
                    out = list(seq)
                out[i] = new
        if out is None:
            return seq
        return tuple(out) if type(seq) is tuple else out


def _userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match.group(1), match.group(2), match.group(3)
    if password is not None:
        # user:password@ keeps the user (a neighbour); a bare user@ is a key (Sentry DSNs).
        return f"{scheme}{user}:{FILTERED}@" if password else match.group(0)
    return f"{scheme}{FILTERED}@" if user else match.group(0)


def _basic(match: re.Match[str]) -> str:
    # "Basic" is also an English word: only a base64 user:password pair is a credential.
    try:
        decoded = base64.b64decode(match.group(3) + "==", validate=False)
    except (binascii.Error, ValueError):
        return match.group(0)
    if b":" not in decoded:
        return match.group(0)
    return match.group(1) + match.group(2) + FILTERED


def _card(match: re.Match[str]) -> str:
    digits = "".join(c for c in match.group(0) if c.isdigit())
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return FILTERED
    return match.group(0)


_current = Scrubber()


def configure(scrubber: Scrubber) -> None:
    """Make ``scrubber`` the one the module-level functions use (``init()`` calls this)."""
    global _current
    _current = scrubber


def current() -> Scrubber:
    return _current


def scrub_text(text: str) -> str:
    """A string with its secrets replaced by ``[Filtered]``, with the active configuration."""
    return _current.scrub_text(text)


def scrub_value(value: Any, key: str | None = None) -> Any:
    """Any value (mapping, sequence, string...), at any depth, with the active configuration."""
    return _current.scrub_value(value, key)


def scrub_mapping(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A mapping (attributes, log fields) scrubbed; the same object when nothing matched."""
    return _current.scrub_mapping(mapping)
