"""The pure rating core: functions over Polars frames plus explicit state.

- :mod:`~rater.core.rating`: ``rate_batch``, the contract's rules as a pipeline of stages;
- :mod:`~rater.core.tariff`: the tariff and its lookup tables (built, never read here);
- :mod:`~rater.core.state`: the one state type threaded from batch to batch;
- :mod:`~rater.core.money`, :mod:`~rater.core.calendar`, :mod:`~rater.core.columns`:
  exact money, local time, the frames' schemas.

Nothing here imports confluent_kafka, duckdb, prometheus_client or the settings, and
nothing touches a file (``make lint`` and a unit test check both); batch mode
(``rater rate-file``) and streaming mode (``rater run``) both call it, so they cannot
disagree. May import Polars, pydantic, :mod:`rater.errors` and the standard library.
"""
