"""From raw measurements to the table, the acceptance checks and the BENCHMARKS.md section.

Everything here is arithmetic on what the workers timed and what the sink counted; nothing is
assumed about how a setup should behave. Overheads are differences to ``bare`` measured in the
same run, and ratios compare them to the anchors of the same run::

    rows = summarize(measurements)
    print(render_table(rows))
    for check in acceptance(rows): print(check.line())
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUSY_CORES",
    "END_MARKER",
    "START_MARKER",
    "Check",
    "Delivery",
    "Measurement",
    "Row",
    "RunKey",
    "acceptance",
    "render_section",
    "render_table",
    "replace_section",
    "summarize",
    "write_section",
]

START_MARKER = "<!-- bench:overhead:start -->"
END_MARKER = "<!-- bench:overhead:end -->"
# Delivered share the acceptance line asks of otel-sentry at rate 1.0.
MIN_DELIVERED = 0.999
# An otel-sentry overhead must be at most this fraction of the anchor's overhead.
MAX_OVERHEAD_RATIO = 0.5

# Batch-to-batch spread (max - min over median) above which a run is flagged as noisy.
NOISY_SPREAD = 0.25
# CPU taken by other processes (in cores) above which a run is flagged: it had to share a core.
BUSY_CORES = 0.2

_CATEGORY_SHORT = {"transaction": "tx", "span": "span", "session": "session", "internal": "cr"}


@dataclass(frozen=True)
class RunKey:
    setup: str
    rate: float
    mode: str | None = None

    @property
    def label(self) -> str:
        return f"{self.setup}[{self.mode}]" if self.mode else self.setup


@dataclass
class Measurement:
    """One worker run: its JSON line (or the error that stopped it) and the sink's counters."""

    key: RunKey
    repeat: int
    worker: dict[str, Any] | None = None
    sink: dict[str, Any] | None = None
    error: str | None = None
    wall_s: float = 0.0
    foreign_cores: float | None = None  # CPU other processes used meanwhile, in cores
    retried: int = 0  # earlier attempts thrown away because other processes took CPU

    @property
    def ok(self) -> bool:
        return self.worker is not None and self.error is None


@dataclass
class Delivery:
    """What arrived, set against what was produced, summed over the repeats of one setup."""

    unit: str | None = None
    rate: float = 1.0
    requests: int = 0
    transactions: int = 0
    spans: int = 0
    produced_spans: int = 0
    produced_roots: int = 0
    counted: bool = True  # False when a run had no in-process counter
    after_sampling: bool = True
    # Transactions the SDK says it sampled out (client reports, reason sample_rate).
    sampled_out: int = 0

    @property
    def delivered(self) -> int:
        return self.transactions if self.unit == "transactions" else self.spans

    @property
    def produced(self) -> int | None:
        """The produced count in the delivered unit, when it is known exactly."""
        if self.unit == "transactions":
            if self.rate >= 1.0:
                return self.requests  # every request is one local root, all sampled
            if not self.sampled_from_reports:
                return self.produced_roots
            # No counter saw the sampling decisions: take the SDK's own report of them.
            return self.requests - self.sampled_out if self.sampled_out else None
        if self.unit == "spans" and self.counted and (self.after_sampling or self.rate >= 1.0):
            if self.traces_dropped_uncounted:
                # At rate 1.0 every request is a trace. Traces the SDK dropped before the
                # counter saw them (sentry_sdk's backpressure lowers its rate) were produced
                # too: count them at the spans per trace that were seen.
                return round(self.produced_spans * self.requests / self.produced_roots)
            return self.produced_spans
        return None

    @property
    def traces_dropped_uncounted(self) -> bool:
        return self.rate >= 1.0 and 0 < self.produced_roots < self.requests

    @property
    def sampled_from_reports(self) -> bool:
        own_count = self.counted and self.after_sampling
        return self.unit == "transactions" and self.rate < 1.0 and not own_count

    @property
    def fraction(self) -> float | None:
        produced = self.produced
        return self.delivered / produced if produced else None

    @property
    def delivered_roots(self) -> float | None:
        """Traces that arrived; estimated from the spans per trace when only spans are counted."""
        if self.unit == "transactions":
            return float(self.transactions)
        if self.unit == "spans" and self.counted and self.produced_spans and self.produced_roots:
            return self.spans * self.produced_roots / self.produced_spans
        return None

    @property
    def expected(self) -> tuple[float, float]:
        """Expected traces at this rate and one binomial sigma: sqrt(n p (1 - p))."""
        n, p = self.requests, min(max(self.rate, 0.0), 1.0)
        return n * p, math.sqrt(n * p * (1 - p))

    @property
    def within_3_sigma(self) -> bool | None:
        roots = self.delivered_roots
        if roots is None or self.rate >= 1.0:
            return None
        expected, sigma = self.expected
        return abs(roots - expected) <= 3 * sigma

    def describe(self) -> str:
        if self.unit is None:
            return "-"
        short = "tx" if self.unit == "transactions" else "spans"
        fraction, produced = self.fraction, self.produced
        if fraction is not None and produced is not None:
            text = f"{fraction:.1%} ({self.delivered}/{produced} {short})"
            if self.sampled_from_reports:
                text += " (sampled: client reports)"
            elif self.unit == "spans" and self.traces_dropped_uncounted:
                dropped = self.requests - self.produced_roots
                text += f" (incl. {dropped} traces dropped before the span counter)"
        else:
            text = f"{self.delivered} {short}"
        if self.rate < 1.0:
            expected, sigma = self.expected
            roots = self.delivered_roots
            verdict = {True: "ok", False: "OUT", None: "?"}[self.within_3_sigma]
            approx = "~" if self.unit == "spans" else ""
            shown = f"{approx}{roots:.0f}" if roots is not None else "?"
            text += f"; traces {shown} vs {expected:.0f}±{3 * sigma:.0f} (3 sigma) {verdict}"
        return text


@dataclass
class Row:
    key: RunKey
    medians: list[float] = field(default_factory=list)
    batches: list[float] = field(default_factory=list)
    rss_mib: float = 0.0
    drain_s: list[float] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    failed: int = 0
    overhead_us: float | None = None
    vs_otlp: float | None = None
    vs_native: float | None = None

    @property
    def median_us(self) -> float | None:
        return statistics.median(self.medians) if self.medians else None

    @property
    def min_us(self) -> float | None:
        return min(self.medians) if self.medians else None


def _absorb(row: Row, m: Measurement) -> None:
    if not m.ok:
        row.failed += 1
        row.notes.append(f"repeat {m.repeat + 1} failed: {m.error}")
        return
    worker = m.worker or {}
    row.medians.append(float(worker["median_us"]))
    row.batches.extend(float(b) for b in worker["batch_us"])
    row.rss_mib = max(row.rss_mib, float(worker["rss_mib"]))
    row.drain_s.append(float(worker["drain_s"]))
    row.notes.extend(n for n in worker.get("notes") or () if n not in row.notes)
    batches = [float(b) for b in worker["batch_us"]]
    spread = (max(batches) - min(batches)) / float(worker["median_us"])
    if spread > NOISY_SPREAD:
        row.notes.append(
            f"repeat {m.repeat + 1}: batches spread {spread:.0%} of the median (noisy machine?)"
        )
    if m.retried:
        row.notes.append(
            f"repeat {m.repeat + 1}: measured {m.retried + 1} times, earlier attempts shared "
            "the CPU with other processes"
        )
    if m.foreign_cores is not None and m.foreign_cores > BUSY_CORES:
        row.notes.append(
            f"repeat {m.repeat + 1}: other processes used {m.foreign_cores:.2f} cores meanwhile"
        )
    if worker.get("failures"):
        row.notes.append(f"{worker['failures']} request(s) did not answer 200")
    d = row.delivery
    d.unit, d.rate = worker.get("delivers"), m.key.rate
    d.requests += int(worker["requests_total"])
    produced = worker.get("produced") or {}
    d.after_sampling = bool(produced.get("after_sampling", True))
    if produced.get("spans") is None or produced.get("roots") is None:
        d.counted = False
    else:
        d.produced_spans += int(produced["spans"])
        d.produced_roots += int(produced["roots"])
    counts = (m.sink or {}).get("counts") or {}
    d.transactions += int((counts.get("items") or {}).get("transaction", 0))
    d.spans += int((counts.get("categories") or {}).get("span", 0)) + int(
        counts.get("otlp_spans", 0)
    )
    for entry in counts.get("discarded") or ():
        reason, category = str(entry["reason"]), str(entry["category"])
        row.drops[(reason, category)] += int(entry["quantity"])
        if (reason, category) == ("sample_rate", "transaction"):
            d.sampled_out += int(entry["quantity"])
    for kind, number in (counts.get("rejected") or {}).items():
        row.notes.append(f"sink rejected {number} request(s): {kind}")
    if counts.get("faulted"):
        row.notes.append(f"sink faulted {counts['faulted']} request(s)")


def summarize(measurements: list[Measurement]) -> list[Row]:
    """One row per setup/rate/mode, in first-run order, with overheads and ratios filled in."""
    rows: dict[RunKey, Row] = {}
    for m in measurements:
        _absorb(rows.setdefault(m.key, Row(m.key)), m)
    for row in rows.values():
        base = rows.get(RunKey("bare", row.key.rate))
        if base is None or base.median_us is None or row.median_us is None:
            continue
        row.overhead_us = row.median_us - base.median_us
    for row in rows.values():
        otlp = rows.get(RunKey("otel_otlp", row.key.rate))
        native = rows.get(RunKey("sentry_native", row.key.rate))
        row.vs_otlp = _ratio(row.overhead_us, otlp.overhead_us if otlp else None)
        row.vs_native = _ratio(row.overhead_us, native.overhead_us if native else None)
    return list(rows.values())


def _ratio(value: float | None, anchor: float | None) -> float | None:
    if value is None or anchor is None or anchor <= 0:
        return None
    return value / anchor


# -- rendering ------------------------------------------------------------------------------------

HEADER = (
    "setup",
    "rate",
    "us/request",
    "batches min-max",
    "overhead us",
    "x otel_otlp",
    "x sentry_native",
    "delivered",
    "SDK-reported drops",
    "peak RSS MiB",
    "drain s",
)


def _num(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _drops(drops: Counter[tuple[str, str]]) -> str:
    if not drops:
        return "-"
    return ", ".join(
        f"{reason} {_CATEGORY_SHORT.get(category, category)} {quantity}"
        for (reason, category), quantity in sorted(drops.items())
    )


def _cells(row: Row) -> list[str]:
    if row.median_us is None:
        return [row.key.label, f"{row.key.rate:g}", "failed", *["-"] * (len(HEADER) - 3)]
    us = _num(row.median_us)
    if len(row.medians) > 1:
        us += f" (min {_num(row.min_us)})"
    return [
        row.key.label,
        f"{row.key.rate:g}",
        us,
        f"{_num(min(row.batches))}-{_num(max(row.batches))}",
        _num(row.overhead_us),
        _num(row.vs_otlp, ".2f"),
        _num(row.vs_native, ".2f"),
        row.delivery.describe(),
        _drops(row.drops),
        _num(row.rss_mib),
        _num(max(row.drain_s), ".2f"),
    ]


def render_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not measured in this run
    detail: str

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[self.passed]
        return f"{verdict}  {self.name}: {self.detail}"


def _find(rows: list[Row], setup: str, rate: float, mode: str | None = None) -> Row | None:
    for row in rows:
        if row.key == RunKey(setup, rate, mode) and row.median_us is not None:
            return row
    return None


def _overhead_check(name: str, row: Row | None, anchor: Row | None, anchor_name: str) -> Check:
    if row is None or anchor is None or row.overhead_us is None or anchor.overhead_us is None:
        return Check(name, None, f"needs bare, {anchor_name} and this setup in the same run")
    limit = MAX_OVERHEAD_RATIO * anchor.overhead_us
    ratio = _ratio(row.overhead_us, anchor.overhead_us)
    detail = (
        f"overhead {row.overhead_us:.0f} us vs {MAX_OVERHEAD_RATIO:g} x {anchor_name} "
        f"{anchor.overhead_us:.0f} us = {limit:.0f} us (ratio {_num(ratio, '.2f')})"
    )
    return Check(name, row.overhead_us <= limit, detail)


def acceptance(rows: list[Row], full_rate: float = 1.0, partial_rate: float = 0.1) -> list[Check]:
    """(1) at rate 1.0: overhead <= 0.5 x otel_otlp's, and >= 99.9% delivered in sentry mode;
    (2) at rate 0.1: overhead <= 0.5 x sentry_native's, and delivered within 3 sigma."""
    checks: list[Check] = []
    otlp = _find(rows, "otel_otlp", full_rate)
    native = _find(rows, "sentry_native", partial_rate)
    for mode in ("sentry", "otlp"):
        row = _find(rows, "otel_sentry", full_rate, mode)
        label = f"(1) otel_sentry[{mode}] at {full_rate:g}"
        checks.append(_overhead_check(label, row, otlp, "otel_otlp"))
        if mode == "sentry":
            fraction = row.delivery.fraction if row else None
            checks.append(
                Check(
                    f"{label} delivered",
                    None if fraction is None else fraction >= MIN_DELIVERED,
                    f"{row.delivery.describe() if row else 'not run'} (needs >= "
                    f"{MIN_DELIVERED:.1%})",
                )
            )
    for mode in ("sentry", "otlp"):
        row = _find(rows, "otel_sentry", partial_rate, mode)
        label = f"(2) otel_sentry[{mode}] at {partial_rate:g}"
        checks.append(_overhead_check(label, row, native, "sentry_native"))
        within = row.delivery.within_3_sigma if row else None
        checks.append(
            Check(
                f"{label} delivered",
                within,
                row.delivery.describe() if row else "not run",
            )
        )
    return checks


def render_section(
    command: str, context: list[tuple[str, str]], rows: list[Row], checks: list[Check]
) -> str:
    lines = [
        START_MARKER,
        "## Request overhead and delivery",
        "",
        f"Measured with `{command}`.",
        "",
        *[f"- {name}: {value}" for name, value in context],
        "",
        "Median us/request over sequential in-process requests (httpx.ASGITransport) to one",
        "FastAPI route; overhead = setup minus `bare` of the same run and rate; `x otel_otlp` and",
        "`x sentry_native` divide that overhead by the anchor's. Delivered = what the sink",
        "(the project's inbox, in its own process) counted, over what the process produced.",
        "See benchmarks/README.md for the setups and how to read this.",
        "",
        render_table(rows),
        "",
        "Acceptance:",
        "",
        *[f"- {check.line()}" for check in checks],
    ]
    notes = [(row.key.label, note) for row in rows for note in row.notes]
    if notes:
        lines += ["", "Notes:", "", *[f"- {label}: {note}" for label, note in notes]]
    lines += [END_MARKER]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's marked section of ``path`` (or add it)."""
    replace_section(path, section, START_MARKER, END_MARKER)


def replace_section(
    path: Path, section: str, start_marker: str, end_marker: str, after: str | None = None
) -> None:
    """Replace the section between the markers in ``path``, leaving every other section alone:
    each benchmark owns one section of BENCHMARKS.md. A new section goes right after the marker
    ``after`` when the file has it, else at the end."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if start_marker not in text and after is not None and after in text:
        at = text.find(after) + len(after)
        text = text[:at] + f"\n\n{start_marker}\n{end_marker}" + text[at:]
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + section.rstrip("\n") + text[end + len(end_marker) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
