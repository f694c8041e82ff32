"""The vectorized rating engine: a batch of CDRs + state -> rated records, events, new state.

:func:`rate_batch` (:mod:`~rater.core.rating.pipeline`) runs the contract's rules as a
pipeline of named stages, one module each: validate (rule 1), dedupe (2), clock (3, 6,
8), lookup (7), increments (4, 5), allowances (8), charges (9), prepaid (10). Pure: this
package may import Polars and :mod:`rater.core` only.
"""

from rater.core.rating.outcome import Outcome
from rater.core.rating.pipeline import (
    STAGES,
    RatingResult,
    adjustment_positions,
    apply_adjustments,
    rate_batch,
)
from rater.core.rating.prepaid import balances_frame
from rater.core.rating.validate import (
    VALID_FROM_US,
    VALID_UNTIL_US,
    in_valid_range,
    max_sms_segments,
    rating_time,
)

__all__ = [
    "STAGES",
    "VALID_FROM_US",
    "VALID_UNTIL_US",
    "Outcome",
    "RatingResult",
    "adjustment_positions",
    "apply_adjustments",
    "balances_frame",
    "in_valid_range",
    "max_sms_segments",
    "rate_batch",
    "rating_time",
]
