"""The streaming job: ``rater run`` rates CDRs from Kafka with exactly-once output.

- :mod:`~rater.stream.job`: :class:`RaterJob`, the consumer-group member and its commit
  path (rate, write sinks, produce, send offsets, commit, publish);
- :mod:`~rater.stream.inputs`: collecting a batch; :mod:`~rater.stream.rate_messages`:
  step 1, a batch in, everything it outputs out; :mod:`~rater.stream.messages`: message
  bodies in the job's wire format; :mod:`~rater.stream.outputs`: what a batch produces;
- :mod:`~rater.stream.changelog`: the state's changelog (deltas, snapshots, restore);
  :mod:`~rater.stream.ownership` and :mod:`~rater.stream.partitioner`: which partition
  a tenant and its state belong to;
- :mod:`~rater.stream.clients`, :mod:`~rater.stream.transaction`,
  :mod:`~rater.stream.topics`: Kafka clients, transactions and topics;
- :mod:`~rater.stream.testing`: an in-memory Kafka for fast tests of all of the above.

May import :mod:`rater.core`, :mod:`rater.wire`, :mod:`rater.tariff_files`,
:mod:`sinks`, the settings, metrics and errors, and confluent-kafka; never the CLI.
"""
