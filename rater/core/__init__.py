"""The pure rating core: functions over Polars frames plus explicit state.

Nothing in this package imports confluent_kafka, duckdb or prometheus_client;
batch mode (``rater rate-file``) and streaming mode (``rater run``) both call it,
so they cannot disagree.
"""
