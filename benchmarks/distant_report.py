"""The distant-ingest benchmark's table and its acceptance checks, from the rows of one run.

``benchmarks/distant.py`` measures; this turns its rows (plain dicts, also what ``--json``
writes) into the ``bench:distant`` section of BENCHMARKS.md and the ``--check`` verdicts::

    section = render(rows, meta)
    verdicts = check(rows, protos=["http1", "h2"])   # [(ok, line), ...]

Rows of a ``--baseline REV`` run named ``otel_sentry@REV`` are an earlier revision of
otel_sentry measured in the same run; they are shown under the matching ``otel_sentry`` rows and
compared with them (sender CPU). Runs saved without them render as before.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["END_MARKER", "START_MARKER", "check", "render"]

START_MARKER = "<!-- bench:distant:start -->"
END_MARKER = "<!-- bench:distant:end -->"

PROTOCOLS = {
    "http1": "plain HTTP: the sink offers HTTP/1.1 only",
    "h2": "TLS, the sink offers h2 and http/1.1 by ALPN: the client picks",
    "http1-tls": "TLS, the sink offers http/1.1 only",
}
CHECK_LATENCIES = (50, 150)
BASELINE_CPU_ALLOWANCE = 1.10  # otel_sentry's sender CPU over the baseline's, at most (noise)
BASELINE_PREFIX = "otel_sentry@"
BUSY_CORES = 0.2  # foreign load above which a row is flagged, as in the other benchmarks


def is_baseline(row: dict[str, Any]) -> bool:
    return str(row["setup"]).startswith(BASELINE_PREFIX)


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in run order, each ``otel_sentry@REV`` row right under the otel_sentry row of
    its latency (whatever order a saved run has them in)."""
    baselines = [r for r in rows if is_baseline(r)]
    out: list[dict[str, Any]] = []
    for row in rows:
        if is_baseline(row):
            continue
        out.append(row)
        if row["setup"] == "otel_sentry":
            out += [b for b in baselines if b["latency_ms"] == row["latency_ms"] and b not in out]
    return out + [b for b in baselines if b not in out]


def baseline_pairs(
    rows: list[dict[str, Any]], proto: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(otel_sentry row, otel_sentry@REV row) at each latency of ``proto`` where both ran."""
    pairs = []
    for new in rows:
        if new["proto"] != proto or new["setup"] != "otel_sentry" or new.get("error"):
            continue
        for old in rows:
            if (
                is_baseline(old)
                and old["proto"] == proto
                and old["latency_ms"] == new["latency_ms"]
                and not old.get("error")
            ):
                pairs.append((new, old))
    return pairs


def _cpu_ratio(new: dict[str, Any], old: dict[str, Any]) -> float | None:
    if new.get("cpu_us") is None or not old.get("cpu_us"):
        return None
    return float(new["cpu_us"]) / float(old["cpu_us"])


def bare_p50(rows: list[dict[str, Any]]) -> float | None:
    for row in rows:
        if row["setup"] == "bare" and row.get("p50_us"):
            return float(row["p50_us"])
    return None


def _share(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str = ".0f") -> str:
    return "-" if value is None else format(value, fmt)


def _reported(row: dict[str, Any]) -> str:
    reported: dict[str, int] = row.get("reported") or {}
    return ", ".join(f"{reason} {n}" for reason, n in sorted(reported.items())) or "-"


def _line(row: dict[str, Any], bare: float | None) -> str:
    if row.get("error"):
        return f"| {row['setup']} | {row['latency_ms']} | not run: {row['error']} |" + " |" * 11
    if row["setup"] == "bare":
        delivery = ["-"] * 6
    else:
        unit = " spans" if row["unit"] == "spans" else ""
        delivery = [
            f"{_pct(_share(row['delivered'], row['produced']))} "
            f"({row['delivered']}/{row['produced']}{unit})",
            _pct(_share(row["delivered_at_flush"], row["produced"])),
            _reported(row),
            _num(row["spooled"], "d"),
            _num(row["unaccounted"], "d"),
            f"{_num(row['cpu_us'])} ({_num(row['cpu_us_threads'])})",
        ]
    ratio = f"{row['p50_us'] / bare:.2f}x" if bare and row.get("p50_us") else "-"
    cells = [
        row["setup"],
        str(row["latency_ms"]),
        *delivery,
        _num(row["rss_mib"]),
        _num(row["drain_s"], ".2f"),
        _num(row["p50_us"]),
        _num(row["p99_us"]),
        ratio,
        _num(row["achieved_rps"]),
    ]
    return "| " + " | ".join(cells) + " |"


_HEADER = (
    "| setup | latency ms | delivered | by flush end | reported | spooled | unaccounted | "
    "sender CPU us/tx (live threads) | peak RSS MiB | drain s | p50 us | p99 us | p50 x bare | "
    "req/s |\n|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: one table per protocol, the bare anchor, notes and checks."""
    bare = bare_p50(rows)
    lines = [
        START_MARKER,
        "## Distant ingest: Sentry 20-150 ms away",
        "",
        f"Measured with `{meta['command']}` ({meta['stamp']}, {meta['elapsed_s']:.0f} s; "
        f"code {meta.get('code', '?')}; sentry-sdk {meta.get('sentry_sdk', '?')}). "
        "Each row is one fresh process: the "
        f"FastAPI app driven in-process at {meta['rps']:g} req/s (paced; a late request makes "
        f"the next start at once) for {meta['duration']:g} s after {meta['warmup']} warm-up "
        "requests, then the SDK's own flush with 30 s (`drain s`), then a normal exit "
        "(atexit shutdown). The sink (the project's inbox, its own process) answers every "
        "ingest request `latency ms` late, as a distant Sentry would (connection set-up is not "
        "delayed). `delivered`: arrived after the process exited, over what it produced "
        "(one transaction per request; spans for `otel_otlp`); `by flush end`: arrived when "
        "the flush returned; `reported`: client reports' transaction quantities by reason; "
        "`spooled`: transactions otel_sentry left on disk at exit (its exit spool, pointed "
        "into the row's directory); otel_sentry runs with load shedding off; `unaccounted` = "
        "produced - delivered - reported - spooled, lost without a trace. Sender CPU: CPU of "
        "every thread but the request thread (process minus main thread; in brackets the "
        "threads alive at the end) per delivered transaction. `p50 x bare`: request p50 over "
        f"`bare`'s in the same run ({_num(bare)} us). See benchmarks/README.md.",
        "",
        *_baseline_intro(rows, meta),
        f"Noise: CPU used by other processes during the rows: {_foreign(rows)}.",
        "",
    ]
    for proto in meta["protos"]:
        proto_rows = [r for r in rows if r["proto"] == proto]
        lines.append(f"**{proto}**: {PROTOCOLS.get(proto, proto)}")
        lines.append("")
        skipped = meta.get("skipped", {}).get(proto)
        if skipped:
            lines += [f"Not measured: {skipped}", ""]
            continue
        lines.append(_HEADER)
        lines += [_line(r, bare) for r in _ordered(proto_rows)]
        lines.append("")
        pairs = baseline_pairs(rows, proto)
        if pairs:
            ratios = ", ".join(
                f"{new['latency_ms']} ms {_num(_cpu_ratio(new, old), '.2f')}x" for new, old in pairs
            )
            lines += [
                f"Sender CPU per transaction, otel_sentry over {pairs[0][1]['setup']} "
                f"(same run): {ratios}.",
                "",
            ]
    bare_rows = [r for r in rows if r["setup"] == "bare"]
    if bare_rows:
        b = bare_rows[0]
        lines.append(
            f"`bare` (no SDK, the latency anchor): p50 {_num(b['p50_us'])} us, p99 "
            f"{_num(b['p99_us'])} us, {_num(b['achieved_rps'])} req/s, peak RSS "
            f"{_num(b['rss_mib'])} MiB."
        )
        lines.append("")
    notes = _notes(rows)
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    verdicts = check(rows, meta["protos"], meta.get("skipped", {}))
    lines += ["Checks (`--check`):", "", *[f"- {line}" for _, line in verdicts]]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def _baseline_intro(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    names = sorted({r["setup"] for r in rows if is_baseline(r)})
    if not names:
        return []
    rev = meta.get("baseline") or names[0].removeprefix(BASELINE_PREFIX)
    return [
        f"Baseline: `{', '.join(names)}` is otel_sentry at git revision {rev}, measured in the "
        "same run right after each `otel_sentry` row (the same worker code, `git archive` of "
        f"{rev} on its PYTHONPATH; the sink from this tree). Each table gives otel_sentry's "
        "sender CPU per delivered transaction over the baseline's (one transaction per envelope "
        "in both; a row that did not deliver everything spent CPU on what is not counted).",
        "",
    ]


def _foreign(rows: list[dict[str, Any]]) -> str:
    loads = sorted(r["foreign_cores"] for r in rows if r.get("foreign_cores") is not None)
    if not loads:
        return "not measured"
    return f"median {loads[len(loads) // 2]:.2f}, max {loads[-1]:.2f} cores"


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes: list[str] = []
    for row in rows:
        proto = "" if row["proto"] == "-" else f"{row['proto']} "
        where = f"{proto}{row['setup']} {row['latency_ms']} ms"
        if row.get("error"):
            continue
        for note in row.get("notes", []):
            notes.append(f"{where}: {note}")
        if (row.get("foreign_cores") or 0) > BUSY_CORES:
            notes.append(f"{where}: other processes used {row['foreign_cores']:.2f} cores")
        if row.get("sink_cores") is not None and row.get("worker_cores") is not None:
            notes.append(
                f"{where}: the worker used {row['worker_cores']:.2f} cores and the sink "
                f"{row['sink_cores']:.2f} over the row (the machine has {os.cpu_count()})"
            )
        if row.get("failures"):
            notes.append(f"{where}: {row['failures']} requests did not answer 200")
    return notes


def _row(rows: list[dict[str, Any]], proto: str, latency: int) -> dict[str, Any] | None:
    for row in rows:
        if row["proto"] == proto and row["setup"] == "otel_sentry" and row["latency_ms"] == latency:
            return None if row.get("error") else row
    return None


def check(
    rows: list[dict[str, Any]], protos: list[str], skipped: dict[str, str] | None = None
) -> list[tuple[bool, str]]:
    """otel_sentry at 50 and 150 ms over each protocol, against its own 0 ms row.

    Delivered by the end of the flush >= 99.9%, nothing unaccounted, peak RSS within 50 MiB of
    the 0 ms row, request p50 over bare's no more than 10% above the 0 ms row's ratio. A row
    that was not measured fails: the check cannot pass on what it did not see.
    """
    bare = bare_p50(rows)
    out: list[tuple[bool, str]] = []
    for proto in protos:
        base = _row(rows, proto, 0)
        for latency in CHECK_LATENCIES:
            name = f"otel_sentry {proto} {latency} ms"
            row = _row(rows, proto, latency)
            if row is None or base is None:
                why = (skipped or {}).get(proto, "no such row (or its 0 ms row) in this run")
                out.append((False, f"NOT MEASURED {name}: {why}"))
                continue
            by_flush = _share(row["delivered_at_flush"], row["produced"]) or 0.0
            out.append(
                (
                    by_flush >= 0.999,
                    f"{_verdict(by_flush >= 0.999)} {name} delivered by flush end "
                    f"{by_flush:.2%} (needs >= 99.9%)",
                )
            )
            lost = row["unaccounted"]
            out.append((lost == 0, f"{_verdict(lost == 0)} {name} unaccounted {lost} (needs 0)"))
            grew = row["rss_mib"] - base["rss_mib"]
            out.append(
                (
                    grew <= 50,
                    f"{_verdict(grew <= 50)} {name} peak RSS {row['rss_mib']:.0f} MiB, "
                    f"{grew:+.0f} vs 0 ms (needs <= +50)",
                )
            )
            if bare and row.get("p50_us") and base.get("p50_us"):
                ratio, base_ratio = row["p50_us"] / bare, base["p50_us"] / bare
                ok = ratio <= base_ratio * 1.10
                out.append(
                    (
                        ok,
                        f"{_verdict(ok)} {name} p50 {ratio:.2f}x bare vs {base_ratio:.2f}x "
                        "at 0 ms (needs <= +10%)",
                    )
                )
            else:
                out.append((False, f"NOT MEASURED {name} p50 ratio: no bare row in this run"))
    for proto in protos:
        out += _check_baseline(rows, proto)
    return out


def _check_baseline(rows: list[dict[str, Any]], proto: str) -> list[tuple[bool, str]]:
    """otel_sentry's sender CPU per transaction <= 1.10x the baseline's where both ran."""
    out: list[tuple[bool, str]] = []
    for new, old in baseline_pairs(rows, proto):
        name = f"otel_sentry {proto} {new['latency_ms']} ms"
        ratio = _cpu_ratio(new, old)
        if ratio is None:
            out.append((False, f"NOT MEASURED {name} sender CPU vs {old['setup']}: none delivered"))
            continue
        ok = ratio <= BASELINE_CPU_ALLOWANCE
        out.append(
            (
                ok,
                f"{_verdict(ok)} {name} sender CPU {new['cpu_us']:.0f} us/tx, "
                f"{ratio:.2f}x {old['setup']}'s {old['cpu_us']:.0f} "
                f"(needs <= {BASELINE_CPU_ALLOWANCE:.2f}x)",
            )
        )
    return out


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
