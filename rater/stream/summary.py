"""What a run of the streaming job did, for the person who started it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rater import metrics
from rater.core.money import format_micros
from rater.stream.outputs import BatchOutput

__all__ = ["RunSummary"]

_OUTCOMES = ("rated", "unrated", "duplicate", "invalid", "dead_lettered")


@dataclass
class RunSummary:
    counts: Counter[str] = field(default_factory=Counter)
    charges: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    # Seconds spent in each step of the commit path, and collecting non-empty batches.
    stage_s: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    aborted: int = 0
    # Monotonic times of the first batch received and the last batch committed.
    busy_from: float | None = None
    busy_until: float | None = None

    @property
    def busy_s(self) -> float:
        if self.busy_from is None or self.busy_until is None:
            return 0.0
        return self.busy_until - self.busy_from

    def record(self, out: BatchOutput) -> None:
        """Count a committed batch, here and in the metrics."""
        self.batches += 1
        self.counts.update(out.counts)
        self.charges.update(out.charges)
        self.events.update(out.events)
        metrics.CONSUMED.inc(out.counts["consumed"])
        for status in _OUTCOMES:
            metrics.RECORDS.labels(status).inc(out.counts[status])
        for currency, micros in out.charges.items():
            metrics.add_charges(currency, micros)
        for event, n in out.events.items():
            metrics.BALANCE_EVENTS.labels(event).inc(n)
        for reason, n in out.dead_reasons.items():
            metrics.DEAD_LETTERED.labels(reason).inc(n)
        for outcome in ("applied", "duplicate", "ignored"):
            metrics.ADJUSTMENTS.labels(outcome).inc(out.counts[f"adjustment_{outcome}"])

    def lines(self) -> list[str]:
        """The summary ``rater run`` prints when it stops: the counts identity, batches,
        throughput, money charged per currency and balance events."""
        c = self.counts
        parts = " + ".join(f"{c[k]} {k}" for k in _OUTCOMES)
        out = [
            f"consumed {c['consumed']} = {parts}",
            f"batches committed {self.batches}, aborted {self.aborted}",
        ]
        if self.busy_s > 0:
            rate = c["consumed"] / self.busy_s
            out.append(
                f"busy {self.busy_s:.3f}s from first message to last commit: {rate:,.0f} CDRs/s"
            )
        if self.stage_s:
            steps = ("collect", "rate", "produce", "send_offsets", "sinks", "commit", "publish")
            times = ", ".join(f"{k} {self.stage_s[k]:.3f}" for k in steps if k in self.stage_s)
            out.append(f"seconds per step: {times}")
        out += [f"charged {cur} {format_micros(m)}" for cur, m in sorted(self.charges.items())]
        out += [f"events {event}: {n}" for event, n in sorted(self.events.items())]
        return out
