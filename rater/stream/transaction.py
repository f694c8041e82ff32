"""The job's transactional producer, as the steps of the commit path use it.

Every call that should time out by itself but may not is bounded (see
:func:`rater.stream.clients.bounded`); a commit that fails with a retriable error is
retried, an abortable one is left to the caller to abort and rewind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from rater.stream.clients import bounded
from rater.stream.outputs import OutBlock

__all__ = ["Transaction"]

log = logging.getLogger(__name__)


class Transaction:
    """One producer's transactions: begin, produce, send offsets, commit or abort."""

    def __init__(self, producer: Any, sleep: Callable[[float], None]) -> None:
        self.producer = producer
        self.sleep = sleep

    def begin(self) -> None:
        self.producer.begin_transaction()

    def produce(self, blocks: Sequence[OutBlock]) -> None:
        """Every message of ``blocks``, to its explicit partition."""
        produce = self.producer.produce
        for block in blocks:
            topic = block.topic
            rows = zip(block.partitions, block.keys, block.values, strict=True)
            if block.headers is None:  # the hot path: no headers keyword, positional only
                for partition, key, value in rows:
                    try:
                        produce(topic, value, key, partition)
                    except BufferError:  # the local queue is full: let it drain, then go on
                        self._produce_blocking(topic, value, key, partition, None)
            else:
                for (partition, key, value), hdrs in zip(rows, block.headers, strict=True):
                    try:
                        produce(topic, value, key, partition, headers=hdrs)
                    except BufferError:
                        self._produce_blocking(topic, value, key, partition, hdrs)
            self.producer.poll(0)

    def _produce_blocking(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int, hdrs: Any
    ) -> None:
        while True:
            self.producer.poll(0.05)
            try:
                self.producer.produce(topic, value, key, partition, headers=hdrs)
                return
            except BufferError:
                continue

    def send_offsets(self, offsets: list[TopicPartition], group: Any) -> None:
        """The input offsets after the batch join the transaction (with the group's
        metadata: a member that lost its partitions in a rebalance cannot commit them)."""
        bounded(
            lambda: self.producer.send_offsets_to_transaction(offsets, group, 15),
            20,
            "send_offsets_to_transaction",
        )

    def commit(self) -> None:
        for attempt in range(10):
            try:
                bounded(lambda: self.producer.commit_transaction(60), 90, "commit_transaction")
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.retriable() and not err.txn_requires_abort() and attempt < 9:
                    log.warning("commit_transaction: %s; retrying", err)
                    self.sleep(min(0.2 * 2**attempt, 5.0))
                    continue
                raise

    def abort(self) -> None:
        bounded(lambda: self.producer.abort_transaction(30), 60, "abort_transaction")
