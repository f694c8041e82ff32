"""The streaming job: ``rater run`` rates CDRs from Kafka with exactly-once output."""
