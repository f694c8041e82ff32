"""rater: a high-throughput usage-rating stream processor for telephony CDRs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
