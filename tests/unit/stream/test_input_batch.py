"""The batch's CDR columns (value, key, partition, offset) stay row for row with its
messages: as they are consumed, and when a rebalance takes partitions away."""

from __future__ import annotations

from rater.stream.inputs import InputBatch
from rater.stream.testing import FakeMessage


def _messages() -> list[FakeMessage]:
    msgs = []
    for offset in range(3):
        for partition in (0, 1):
            key = f"t{partition}".encode()
            msgs.append(FakeMessage("cdrs", partition, offset, key, b"v%d%d" % (partition, offset)))
    msgs.append(FakeMessage("topups", 1, 7, b"t1", b"topup"))
    return msgs


def _columns_match(batch: InputBatch) -> None:
    assert batch.cdr_values == [m.value() for m in batch.cdrs]
    assert batch.cdr_keys == [m.key() for m in batch.cdrs]
    assert batch.cdr_partitions == [m.partition() for m in batch.cdrs]
    assert batch.cdr_offsets == [m.offset() for m in batch.cdrs]


def test_columns_are_gathered_in_consumption_order() -> None:
    batch = InputBatch()
    msgs = _messages()
    batch.add_all(msgs[:4], "cdrs")
    batch.add_all(msgs[4:], "cdrs")
    assert batch.cdrs == msgs[:6]
    assert [m.topic() for m in batch.adjustments] == ["topups"]
    _columns_match(batch)
    assert batch.first == {("cdrs", 0): 0, ("cdrs", 1): 0, ("topups", 1): 7}
    assert batch.last == {("cdrs", 0): 2, ("cdrs", 1): 2, ("topups", 1): 7}
    assert len(batch) == 7


def test_dropping_partitions_drops_their_rows_from_every_column() -> None:
    batch = InputBatch()
    batch.add_all(_messages(), "cdrs")
    batch.drop_partitions({("cdrs", 0), ("topups", 1)})
    assert [m.partition() for m in batch.cdrs] == [1, 1, 1]
    assert batch.adjustments == []
    _columns_match(batch)
    assert batch.first == {("cdrs", 1): 0}
