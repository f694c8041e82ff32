"""``rater invoice``: the billing core's invoices written as files and documents, prepaid
debits sent to Kafka, and the usage of the open period.

- :mod:`~rater.billing.sources`: rated records and adjustments from a rate-file output
  directory or the streaming job's dataset;
- :mod:`~rater.billing.run`: one period invoiced into an output directory, atomically;
- :mod:`~rater.billing.debits`: a prepaid tenant's product lines as ``charge``
  adjustments on the adjustments topic;
- :mod:`~rater.billing.preview`: usage this period as JSON and text.
"""

from rater.billing.sources import Source, open_source

__all__ = ["Source", "open_source"]
