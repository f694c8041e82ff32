"""A local single-node Kafka broker (KRaft) run from Kafka's own jars, for development.

Not runtime code: the rating and streaming code never import it; the demo, the test suite,
the benchmarks and ``rater broker start|stop|status`` (:mod:`rater.cli.broker`) do.

- :mod:`rater.devbroker.jars`: Kafka's jars, resolved once by Maven (pom.xml) into
  ``broker_home()`` (``$RATER_BROKER_HOME`` or ``<repo>/.cache/kafka``);
- :mod:`rater.devbroker.local`: :class:`LocalBroker`, starting, waiting for and stopping
  the broker's JVM;
- :mod:`rater.devbroker.state`: the pid and state files that let another process find and
  stop a broker;
- :mod:`rater.devbroker.process`: free ports, process liveness, stopping a process group.
- :mod:`rater.devbroker.registry`: :class:`~rater.devbroker.registry.LocalRegistry`, a real
  Confluent-compatible schema registry (Apicurio, built once by Maven from registry-pom.xml).
"""

from __future__ import annotations

from rater.devbroker.errors import BrokerError
from rater.devbroker.jars import broker_home, ensure_jars
from rater.devbroker.local import LocalBroker
from rater.devbroker.process import free_port
from rater.devbroker.state import read_state, running_state, stop_from_state

__all__ = [
    "BrokerError",
    "LocalBroker",
    "broker_home",
    "ensure_jars",
    "free_port",
    "read_state",
    "running_state",
    "stop_from_state",
]
