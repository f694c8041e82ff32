"""A batch of consumed messages, and how it is collected from the consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

__all__ = ["InputBatch", "collect_batch"]

log = logging.getLogger(__name__)


@dataclass
class InputBatch:
    """Messages of one batch, in consumption order, with the offsets they span.

    The CDR messages' value, key, partition and offset are also gathered as columns while
    they are consumed (``cdr_values`` ..., row i of each is ``cdrs[i]``): rating reads them
    in bulk instead of calling each message's accessors again.
    """

    cdrs: list[Any] = field(default_factory=list)
    cdr_values: list[bytes | None] = field(default_factory=list)
    cdr_keys: list[bytes | None] = field(default_factory=list)
    cdr_partitions: list[int] = field(default_factory=list)
    cdr_offsets: list[int] = field(default_factory=list)
    adjustments: list[Any] = field(default_factory=list)  # of the top-ups and adjustments topics
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[tuple[str, int], int] = field(default_factory=dict)
    received_at: float = 0.0  # monotonic time of the first message
    # The input is complete (the job stops because it is idle): an adjustment still
    # waiting for a CDR at or after its time applies after the batch's CDRs.
    settle: bool = False

    def __len__(self) -> int:
        return len(self.cdrs) + len(self.adjustments)

    def add_all(self, msgs: list[Any], cdr_topic: str) -> None:
        """Add error-free messages, in consumption order (a tight loop: it sees every one)."""
        if msgs and not self.received_at:
            self.received_at = time.monotonic()
        cdrs, adjustments, first, last = self.cdrs, self.adjustments, self.first, self.last
        values, keys = self.cdr_values, self.cdr_keys
        partitions, offsets = self.cdr_partitions, self.cdr_offsets
        for msg in msgs:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            tp = (topic, partition)
            if tp not in last:
                first[tp] = offset
            last[tp] = offset
            if topic == cdr_topic:
                cdrs.append(msg)
                values.append(msg.value())
                keys.append(msg.key())
                partitions.append(partition)
                offsets.append(offset)
            else:
                adjustments.append(msg)

    def drop_partitions(self, gone: set[tuple[str, int]]) -> None:
        """Forget messages of partitions this process no longer owns."""
        if not gone & self.first.keys():
            return
        self.cdrs = [m for m in self.cdrs if (m.topic(), m.partition()) not in gone]
        self.adjustments = [m for m in self.adjustments if (m.topic(), m.partition()) not in gone]
        self.cdr_values = [m.value() for m in self.cdrs]
        self.cdr_keys = [m.key() for m in self.cdrs]
        self.cdr_partitions = [m.partition() for m in self.cdrs]
        self.cdr_offsets = [m.offset() for m in self.cdrs]
        for tp in gone:
            self.first.pop(tp, None)
            self.last.pop(tp, None)


def collect_batch(
    consume: Callable[[int, float], list[Any]],
    batch: InputBatch,
    *,
    cdr_topic: str,
    max_records: int,
    max_wait_s: float,
    should_stop: Callable[[], bool],
) -> None:
    """Fill ``batch`` until ``max_records`` messages, ``max_wait_s`` elapsed, or the input is
    idle. A rebalance inside ``consume`` may drop messages from ``batch`` meanwhile."""
    deadline = time.monotonic() + max_wait_s
    while len(batch) < max_records and not should_stop():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        msgs = consume(min(max_records - len(batch), 20_000), remaining)
        if not msgs and len(batch):
            break  # drained what there is: rate it now rather than wait
        good = [m for m in msgs if m.error() is None]
        if len(good) < len(msgs):
            _report_errors(msgs)
        batch.add_all(good, cdr_topic)


def _report_errors(msgs: list[Any]) -> None:
    for msg in msgs:
        err = msg.error()
        if err is None or err.code() == KafkaError._PARTITION_EOF:
            continue
        if err.fatal():
            raise KafkaException(err)
        log.warning("consumer: %s", err)
