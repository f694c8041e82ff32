"""A telephony switch simulator: realistic CDRs for a tariff deck, to Kafka or to a file.

- :mod:`rater.simulate.generate`: the deterministic CDR generator (the same seed gives the
  same records, byte for byte) and the writers of CDRs to JSON messages and files;
- :mod:`rater.simulate.corrupt`: hostile, undecodable messages mixed into the traffic;
- :mod:`rater.simulate.publish`: producing the CDRs to Kafka, registering their schema;

The simulator is a client of the rater, not part of it. It may import rater.core.columns,
rater.wire, rater.settings, rater.errors, rater.logs, rater.stream.topics (to create the CDR topic)
and confluent_kafka; never the streaming job (rater.stream) nor the rating code, so that
what it produces is checked by the rater rather than shaped by it.
"""

from __future__ import annotations

from rater.simulate.corrupt import corrupt_messages
from rater.simulate.generate import encode_cdrs_json, generate_cdrs, write_cdrs
from rater.simulate.publish import PublishStats, publish, publish_values, register_schema

__all__ = [
    "PublishStats",
    "corrupt_messages",
    "encode_cdrs_json",
    "generate_cdrs",
    "publish",
    "publish_values",
    "register_schema",
    "write_cdrs",
]
