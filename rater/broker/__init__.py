"""A local single-node Kafka broker (KRaft) run from Kafka's own jars."""

from __future__ import annotations

from rater.broker.local import BrokerError, LocalBroker, broker_home, ensure_jars

__all__ = ["BrokerError", "LocalBroker", "broker_home", "ensure_jars"]
