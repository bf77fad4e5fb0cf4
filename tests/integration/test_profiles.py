"""Profiles from a FastAPI app under uvicorn, as Sentry receives them (sentry/profiles.py).

The app runs as a real subprocess with ``SENTRY_DSN`` pointing at the inbox. Its route spends
~50 ms of CPU in a function with a name of its own, inside a span of its own; the inbox must
show the profile tied to the request's transaction (same envelope, ids, name, timestamps) with
that function among the frames sampled on the request's thread, or, with continuous profiling,
a chunk from the profiler the transaction names, cut by the threads its spans record.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from otel_sentry.inbox import Inbox
from otel_sentry.inbox.store import ReceivedEnvelope
from tests.integration.launched import BIN, Launched

pytestmark = pytest.mark.integration

WORK = "crunch_numbers_for_the_profile"

# argv: port, init() keywords as JSON, then "sampler" to profile only /work.
APP = f"""
import json, sys, time

import otel_sentry

options = json.loads(sys.argv[2])
if sys.argv[3:] == ["sampler"]:
    # sentry_sdk's profiles_sampler: rate 0 for /skip, 1 for everything else.
    options["profiles_sampler"] = lambda context: (
        0.0 if context["attributes"].get("url.path") == "/skip" else 1.0
    )
otel_sentry.init(**options)

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace

app = FastAPI()
tracer = trace.get_tracer("tests.profiles")


def {WORK}(ms):
    until, total = time.process_time() + ms / 1000, 0
    while time.process_time() < until:
        total += sum(i * i for i in range(500))
    return total


@app.get("/ping")
async def ping():
    return {{"ok": True}}


@app.get("/work")
@app.get("/skip")
async def work():
    with tracer.start_as_current_span("crunch"):
        return {{"total": {WORK}(50)}}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _server(inbox: Inbox, options: dict[str, Any], *extra: str, **env: str) -> Launched:
    # Launched fills in {port} with str.format: the other braces are doubled.
    quoted = [part.replace("{", "{{").replace("}", "}}") for part in (APP, json.dumps(options))]
    command = [str(BIN / "python"), "-c", quoted[0], "{port}", quoted[1], *extra]
    return Launched(command, {"SENTRY_DSN": inbox.dsn(), **env}, probe="/ping")


def _envelope_of(inbox: Inbox, name: str) -> ReceivedEnvelope | None:
    for received in inbox.envelopes:
        if any(t.get("transaction") == name for t in received.envelope.transactions()):
            return received
    return None


def _wait_envelope(inbox: Inbox, name: str) -> ReceivedEnvelope:
    assert inbox.wait_for(lambda i: _envelope_of(i, name) is not None, 30), [
        t.get("transaction") for t in inbox.transactions()
    ]
    found = _envelope_of(inbox, name)
    assert found is not None
    return found


def _functions_on(profile: dict[str, Any], thread_id: str) -> set[str]:
    """Function names of every frame sampled on ``thread_id``."""
    frames, stacks = profile["frames"], profile["stacks"]
    return {
        frames[i].get("function", "")
        for sample in profile["samples"]
        if sample["thread_id"] == thread_id
        for i in stacks[sample["stack_id"]]
    }


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_a_profile_arrives_tied_to_its_transaction(inbox: Inbox) -> None:
    with _server(inbox, {}, SENTRY_PROFILES_SAMPLE_RATE="1.0") as server:
        assert server.request("GET", "/work")[0] == 200
        received = _wait_envelope(inbox, "GET /work")
    envelope = received.envelope
    [txn] = envelope.transactions()
    [profile] = envelope.payloads("profile")
    [tied] = profile["transactions"]
    # What Sentry opens the profile from the transaction by.
    assert tied["id"] == txn["event_id"] == envelope.event_id
    assert tied["trace_id"] == txn["contexts"]["trace"]["trace_id"]
    assert tied["name"] == txn["transaction"] == "GET /work"
    assert abs(_seconds(profile["timestamp"]) - txn["start_timestamp"]) < 0.001
    duration_ns = (txn["timestamp"] - txn["start_timestamp"]) * 1e9
    assert tied["relative_start_ns"] == "0"
    assert 40e6 <= int(tied["relative_end_ns"]) <= duration_ns + 50e6
    assert profile["platform"] == "python" and profile["version"] == "1"
    # The route's own code, sampled on the thread the request ran on.
    assert WORK in _functions_on(profile["profile"], tied["active_thread_id"])
    assert inbox.problems == []


def test_profiles_sampler_decides_per_transaction(inbox: Inbox) -> None:
    with _server(inbox, {}, "sampler") as server:
        assert server.request("GET", "/skip")[0] == 200
        assert server.request("GET", "/work")[0] == 200
        skipped = _wait_envelope(inbox, "GET /skip")
        profiled = _wait_envelope(inbox, "GET /work")
    # Rate 0 for /skip: its transaction comes alone; /work (rate 1) brings its profile.
    assert [item.type for item in skipped.envelope.items] == ["transaction"]
    [profile] = profiled.envelope.payloads("profile")
    assert profile["transactions"][0]["id"] == profiled.envelope.event_id
    assert WORK in _functions_on(profile["profile"], profile["transactions"][0]["active_thread_id"])


def test_continuous_profiling_with_the_trace_lifecycle(inbox: Inbox) -> None:
    options = {"profile_session_sample_rate": 1.0, "profile_lifecycle": "trace"}
    # profiles_sample_rate 0: no transaction profiles, as in sentry_sdk.
    with _server(inbox, options, SENTRY_PROFILES_SAMPLE_RATE="0") as server:
        assert server.request("GET", "/work")[0] == 200
        received = _wait_envelope(inbox, "GET /work")
        [txn] = received.envelope.transactions()
        profiler_id = txn["contexts"].get("profile", {}).get("profiler_id")
        assert profiler_id, txn["contexts"]

        def chunks(i: Inbox) -> list[dict[str, Any]]:
            found = [item.json for item in i.items("profile_chunk")]
            return [c for c in found if c.get("profiler_id") == profiler_id]

        # The profiler stops once no sampled root is open, and sends its chunk then.
        assert inbox.wait_for(lambda i: bool(chunks(i)), 30), inbox.counts
        chunk = chunks(inbox)[0]
    assert [item.type for item in received.envelope.items] == ["transaction"]  # no profile
    assert chunk["platform"] == "python" and chunk["version"] == "2"
    [crunch] = [s for s in txn["spans"] if s["description"] == "crunch"]
    for data in (crunch["data"], txn["contexts"]["trace"]["data"]):
        assert data["thread.name"] and data["thread.id"]
    thread_id = str(crunch["data"]["thread.id"])
    sampled = chunk["profile"]
    assert sampled["thread_metadata"][thread_id]["name"] == crunch["data"]["thread.name"]
    assert WORK in _functions_on(sampled, thread_id)
    # Sentry cuts the chunk by the span's time: samples fall inside it.
    inside = [
        s
        for s in sampled["samples"]
        if crunch["start_timestamp"] <= s["timestamp"] <= crunch["timestamp"]
        and s["thread_id"] == thread_id
    ]
    assert inside
    assert inbox.problems == []
