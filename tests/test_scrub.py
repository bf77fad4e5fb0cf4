"""The scrubber: key rules, value shapes, neighbours left intact, and a property test."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_sentry._internal.scrub import FILTERED, Scrubber
from otel_sentry._internal.sentry.hooks import SentryHooks, scrub_event
from otel_sentry._internal.sentry.noise import NoiseFilter

S = Scrubber()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /cb?code=42&token=abc123&page=2", "GET /cb?code=42&token=[Filtered]&page=2"),
        ("login user=ada password=hunter2 ok", "login user=ada password=[Filtered] ok"),
        ('{"api-key": "k-123", "item": "widget"}', '{"api-key": "[Filtered]", "item": "widget"}'),
        ("API_KEY=abc; Path=/", "API_KEY=[Filtered]; Path=/"),
        ("Authorization: Bearer abcdef123456", "Authorization: [Filtered] [Filtered]"),
        ("sent Bearer abcdef123456 upstream", "sent Bearer [Filtered] upstream"),
        ("postgres://app:s3cr3t@db:5432/app", "postgres://app:[Filtered]@db:5432/app"),
        (
            "dsn https://0123abcd@o1.ingest.sentry.io/1",
            "dsn https://[Filtered]@o1.ingest.sentry.io/1",
        ),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "jwt [Filtered] end"),
        ("key sk-ant-api03-abcdefghijklmnopqrstuv end", "key [Filtered] end"),
        ("key sk-proj-abcdefghijklmnopqrstuv end", "key [Filtered] end"),
        ("aws AKIAIOSFODNN7EXAMPLE end", "aws [Filtered] end"),
        ("card 4111 1111 1111 1111 paid", "card [Filtered] paid"),
        (
            "card 4111-1111-1111-1112 is not Luhn-valid",
            "card 4111-1111-1111-1112 is not Luhn-valid",
        ),
        ("ts 1732312345678 and id 5500000000000004x", "ts 1732312345678 and id 5500000000000004x"),
        ("Basic dXNlcjpwYXNz and basic information", "Basic [Filtered] and basic information"),
        ("contact ada@example.com today", "contact [Filtered] today"),
        ("input_tokens=5 max_tokens=7", "input_tokens=5 max_tokens=7"),
        ("SELECT id FROM items WHERE id = ?", "SELECT id FROM items WHERE id = ?"),
    ],
)
def test_text(text: str, expected: str) -> None:
    assert S.scrub_text(text) == expected


def test_unchanged_text_is_the_same_object() -> None:
    text = "GET /items/{item_id} " + "x" * 300
    assert S.scrub_text(text) is text


@pytest.mark.parametrize(
    "key",
    [
        "password", "Authorization", "X-Api-Key", "apiKey", "api-key", "access_token",
        "client_secret", "session_id", "Cookie", "set-cookie", "csrftoken", "X-XSRF-TOKEN",
        "private_key", "DB_PASSWORD", "sentry.dsn", "credit_card", "cardNumber", "cvv", "ssn",
        "OPENAI_API_KEY", "anthropic-api-key", "jwt", "PHPSESSID", "userPwd",
    ],
)  # fmt: skip
def test_sensitive_keys(key: str) -> None:
    assert S.is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens", "gen_ai.request.max_tokens", "http.method", "author",
        "process.name", "cache.key", "description", "messaging.message.id", "db.statement",
    ],
)  # fmt: skip
def test_ordinary_keys(key: str) -> None:
    assert not S.is_sensitive_key(key)


def test_nested_mapping_keeps_neighbours_and_copies_only_what_changed() -> None:
    untouched = {"route": "/items/{id}", "count": 3}
    data = {
        "a": {"b": [{"password": "p1", "name": "ada"}, "x=1&secret=s2"]},
        "untouched": untouched,
        "n": 1.5,
    }
    out = S.scrub_mapping(data)
    assert out == {
        "a": {"b": [{"password": FILTERED, "name": "ada"}, "x=1&secret=[Filtered]"]},
        "untouched": untouched,
        "n": 1.5,
    }
    assert out["untouched"] is untouched
    assert data["a"]["b"][0]["password"] == "p1"  # the input is never modified


def test_pii_only_with_send_default_pii() -> None:
    data = {"user": {"email": "a@b.io", "id": "7"}, "client.address": "10.0.0.1"}
    assert S.scrub_mapping(data) == {
        "user": {"email": FILTERED, "id": "7"},
        "client.address": FILTERED,
    }
    assert Scrubber(send_default_pii=True).scrub_mapping(data) is data


def test_options_extra_keys_patterns_allow_list_and_callback() -> None:
    def shout(key: str | None, value: Any) -> Any:
        return value.upper() if key == "note" else value

    s = Scrubber(
        extra_keys=["acct-no"],
        patterns=[r"ORD-\d{6}"],
        allow_keys=["session_id"],
        callback=shout,
    )
    out = s.scrub_mapping(
        {"acct_no": "77", "session_id": "kept", "text": "ref ORD-123456 ok", "note": "hi"}
    )
    assert out == {
        "acct_no": FILTERED,
        "session_id": "kept",
        "text": "ref [Filtered] ok",
        "note": "HI",
    }


def test_sentry_event_exits() -> None:
    event = {
        "request": {
            "url": "http://x/cb",
            "query_string": "code=1&access_token=T1",
            "headers": {"Authorization": "Bearer T2abcdef", "Accept": "*/*"},
            "cookies": {"sessionid": "T3"},
            "data": {"item": "widget", "card": "4111111111111111"},
            "env": {"REMOTE_ADDR": "10.1.2.3"},
        },
        "exception": {"values": [{"type": "E", "value": "failed with password=T4 for ada"}]},
        "breadcrumbs": {"values": [{"message": "GET /x?token=T5", "data": {"jwt": "T6"}}]},
        "extra": {"nested": {"deep": {"private_key": "T7"}}},
        "tags": {"api_key": "T8", "region": "eu"},
    }
    out = scrub_event(Scrubber(), event)
    text = json.dumps(out)
    assert not re.search(r"T[1-8]", text.replace("[Filtered]", ""))
    assert out["request"]["data"] == FILTERED  # no request bodies without send_default_pii
    assert out["request"]["headers"]["Accept"] == "*/*"
    assert out["exception"]["values"][0]["value"] == "failed with password=[Filtered] for ada"
    assert out["tags"]["region"] == "eu"


def test_hooks_run_the_users_hook_first_and_scrub_last() -> None:
    seen: list[str] = []

    def users(event: dict[str, Any], hint: Any) -> dict[str, Any]:
        seen.append(event["extra"]["password"])
        return {**event, "extra": {**event["extra"], "added": "token=T9"}}

    hooks = SentryHooks(Scrubber(), NoiseFilter(()), before_send=users)
    out = hooks.before_send({"extra": {"password": "raw"}}, {})
    assert seen == ["raw"]
    assert out["extra"] == {"password": FILTERED, "added": "token=[Filtered]"}


# -- property: random structures, secrets at random depth --------------------------------------

_SECRET = st.text(
    "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=24
)
_SECRET_KEYS = st.sampled_from(
    ["password", "Authorization", "X-Api-Key", "api_key", "apiKey", "access_token",
     "client_secret", "session_id", "Cookie", "csrftoken", "private-key", "DB_PASSWORD",
     "sentry_dsn", "card_number", "cvv", "ssn", "jwt"]
)  # fmt: skip
_TEXT_KEYS = st.sampled_from(["token", "api_key", "password", "secret", "access_token", "pwd"])
_WORDS = st.sampled_from(
    ["widget", "gadget", "order", "alpha", "42", "GET", "/items/7", "done", "page=2", "x-y"]
)
_PLAIN_KEYS = st.sampled_from(["name", "id", "route", "count", "items", "http.method", "note"])
_NEUTRAL = st.lists(_WORDS, min_size=1, max_size=4).map(" ".join)


@st.composite
def _secret_string(draw: st.DrawFn) -> tuple[str, str, str]:
    """(text with one secret, the text as it must come out, the secret)."""
    secret = "cn" + draw(_SECRET)
    left, right = draw(_NEUTRAL), draw(_NEUTRAL)
    form = draw(st.integers(0, 4))
    if form == 0:
        key = draw(_TEXT_KEYS)
        sep = draw(st.sampled_from(["&", " "]))
        text = f"{left}{sep}{key}={secret}{sep}{right}"
        return text, f"{left}{sep}{key}={FILTERED}{sep}{right}", secret
    if form == 1:
        return (
            f"{left} https://svc.local/cb?code=1&api-key={secret}&page=3 {right}",
            f"{left} https://svc.local/cb?code=1&api-key={FILTERED}&page=3 {right}",
            secret,
        )
    if form == 2:
        return (
            f"{left} redis://app:{secret}@cache:6379/0 {right}",
            f"{left} redis://app:{FILTERED}@cache:6379/0 {right}",
            secret,
        )
    if form == 3:
        return f"{left} Bearer {secret} {right}", f"{left} Bearer {FILTERED} {right}", secret
    return f"{left} sk-ant-{secret}xyzw {right}", f"{left} {FILTERED} {right}", secret


@st.composite
def _tree(draw: st.DrawFn, depth: int = 0) -> tuple[Any, Any, list[str]]:
    """(structure, expected scrubbed structure, secrets planted in it)."""
    choice = draw(st.integers(0, 5 if depth < 6 else 1))
    if choice == 0:
        value = draw(st.one_of(_NEUTRAL, st.integers(), st.booleans(), st.none()))
        return value, value, []
    if choice == 1:
        text, expected_text, secret = draw(_secret_string())
        return text, expected_text, [secret]
    if choice in (2, 3):
        data: dict[str, Any] = {}
        expected: dict[str, Any] = {}
        planted: list[str] = []
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                key = draw(_SECRET_KEYS)
                secret = "cn" + draw(_SECRET)
                data[key], expected[key] = secret, FILTERED
                planted.append(secret)
            else:
                key = draw(_PLAIN_KEYS) + str(len(data))
                data[key], expected[key], more = draw(_tree(depth + 1))
                planted += more
        return data, expected, planted
    items = [draw(_tree(depth + 1)) for _ in range(draw(st.integers(0, 4)))]
    return [i[0] for i in items], [i[1] for i in items], [s for i in items for s in i[2]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tree())
def test_property_no_secret_survives_and_neighbours_are_unchanged(
    case: tuple[Any, Any, list[str]],
) -> None:
    data, expected, planted = case
    out = Scrubber().scrub_value(data)
    assert out == expected
    dumped = json.dumps(out)
    assert not [secret for secret in planted if secret in dumped]


def test_ids_that_look_like_card_numbers_are_kept() -> None:
    # One span id in ~50,000 is 16 decimal digits that pass the card rule; filtered, the
    # transaction's trace breaks and Relay rejects it. The same digits elsewhere are filtered.
    card_like = "4111111111111111"
    event = {
        "event_id": "5" + "0" * 12 + "4" * 19,
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": card_like}},
        "spans": [{"span_id": card_like, "parent_span_id": card_like, "data": {"n": card_like}}],
    }
    scrubbed = scrub_event(S, event)
    assert scrubbed["contexts"]["trace"]["span_id"] == card_like
    assert scrubbed["spans"][0]["span_id"] == card_like
    assert scrubbed["spans"][0]["parent_span_id"] == card_like
    assert scrubbed["spans"][0]["data"]["n"] == FILTERED
