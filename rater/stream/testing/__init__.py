"""In-memory Kafka for testing the streaming job without a broker.

:class:`FakeCluster` stands in for :class:`rater.stream.clients.ConfluentClients`: it
hands out consumers, transactional producers and admin clients over in-memory topics.
It models what the job's exactly-once argument relies on, and nothing more:

- transactions: produced messages and sent offsets become visible together at commit,
  never after an abort; ``init_transactions`` with a transactional.id fences earlier
  producers of that id and aborts their open transaction;
- a consumer group with the range assignor, rebalance callbacks on the next
  ``consume``, and group generations: offsets sent with stale group metadata abort the
  transaction (as KIP-447 has brokers do);
- ``read_committed`` reads only (aborted data never appears).

Failures are injected with :meth:`FakeCluster.fail`: an abortable, retriable or fatal
Kafka error, or :class:`Crash`, which stands for the process dying at that point (it is
a BaseException, so the job cannot catch it, like a kill -9).

Like bytewax's testing source and sink, this keeps the streaming tests fast: a commit
path, a rebalance or a restore runs in milliseconds.
"""

from rater.stream.testing.clients import FakeMessage
from rater.stream.testing.cluster import Crash, FakeClock, FakeCluster

__all__ = ["Crash", "FakeClock", "FakeCluster", "FakeMessage"]
