"""The hash index of the held dedupe keys (rater.core.seen_index): what it finds is what
the keys hold, whatever its runs, and a hash held under another key never makes a
duplicate of a new record (nor hides a held one)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from coredeck import cdr, frame
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.core.rating import rate_batch
from rater.core.seen_index import SeenIndex, key_hash
from rater.core.state import SEEN_SCHEMA, RatingState
from rater.core.tariff import Tariff


def _seen(keys: list[tuple[str, str]]) -> pl.DataFrame:
    when = datetime(2025, 3, 3, tzinfo=UTC)
    return pl.DataFrame(
        {
            "tenant_id": [t for t, _ in keys],
            "cdr_id": [c for _, c in keys],
            "seen_time": [when] * len(keys),
        },
        schema=SEEN_SCHEMA,
    )


def _index_in_batches(seen: pl.DataFrame, size: int) -> SeenIndex:
    index = SeenIndex.empty()
    for start in range(0, seen.height, size):
        index = index.appended(seen.slice(start, size).select(key_hash()).to_series())
    return index


@settings(max_examples=80, deadline=None)
@given(
    held=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 60)), unique=True),
    asked=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 80)), unique=True),
    size=st.integers(1, 9),
)
def test_hits_are_the_held_keys(
    held: list[tuple[str, int]], asked: list[tuple[str, int]], size: int
) -> None:
    seen = _seen([(t, f"id{c}") for t, c in held])
    index = _index_in_batches(seen, size)
    assert index.rows == seen.height
    assert len(index.runs) <= max(1, seen.height).bit_length() + 1  # few runs, however appended
    queries = _seen([(t, f"id{c}") for t, c in asked])
    hits = index.hits(queries.select(key_hash()).to_series())
    pairs = {
        ((queries["tenant_id"][q], queries["cdr_id"][q]), (seen["tenant_id"][p], seen["cdr_id"][p]))
        for q, p in hits.iter_rows()
    }
    expected = {(t, f"id{c}") for t, c in asked} & {(t, f"id{c}") for t, c in held}
    assert {key for key, at_pos in pairs if key == at_pos} == expected
    assert len(pairs) == hits.height  # each (query, row) once


def _state(keys: list[tuple[str, str]], hashes_of: list[tuple[str, str]]) -> RatingState:
    """A state holding ``keys`` whose index claims the hashes of ``hashes_of`` for them:
    a forged 64-bit collision."""
    seen = _seen(keys)
    forged = _seen(hashes_of).select(key_hash()).to_series()
    index = SeenIndex.empty().appended(forged)
    return RatingState.of(seen=seen).with_seen_index(index)


def test_a_hash_held_under_another_key_is_not_a_duplicate(tariff: Tariff) -> None:
    # The index says row 0 has the hash of ("pre", "new"), but row 0 is ("pre", "old").
    state = _state([("pre", "old")], [("pre", "new")])
    result = rate_batch(tariff, frame([cdr("new")]), state)
    assert result.rated["status"].to_list() == ["rated"]


def test_a_held_key_behind_a_colliding_one_is_still_a_duplicate(tariff: Tariff) -> None:
    # Both held keys have the hash of ("pre", "new"): the first is another key.
    state = _state([("pre", "old"), ("pre", "new")], [("pre", "new"), ("pre", "new")])
    result = rate_batch(tariff, frame([cdr("new"), cdr("other")]), state)
    assert result.rated["status"].to_list() == ["duplicate", "rated"]


def test_the_index_grows_with_the_batches_and_matches_a_rebuilt_one(tariff: Tariff) -> None:
    carried = RatingState.empty()
    rebuilt = RatingState.empty()
    for batch in range(12):
        rows = frame([cdr(f"c{batch * 3 + i}") for i in range(5)])  # overlaps the last batch
        a = rate_batch(tariff, rows, carried)
        b = rate_batch(tariff, rows, rebuilt)
        assert a.rated.equals(b.rated)
        carried = a.state
        # The index covers the keys before this batch's; the next lookup adds them.
        assert carried.seen_index is not None
        assert carried.seen_index.rows == carried.seen.height - a.delta.seen.height
        assert carried.seen_lookup().rows == carried.seen.height
        rebuilt = RatingState.from_bytes(b.state.to_bytes())  # read back: no index
        assert rebuilt.seen_index is None
    assert carried.equals(rebuilt)
    assert carried.seen.height == 11 * 3 + 5
