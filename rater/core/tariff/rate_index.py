"""Rate selection (rule 7) as two array lookups: the rate index built from a rate deck.

See :class:`RateIndex` for the idea. Built once per tariff; the rating core's lookup stage
(:mod:`rater.core.rating.lookup`) searches it for a whole batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = [
    "DENSE_INDEX_LIMIT",
    "MAX_PREFIX_DIGITS",
    "OPEN_END_US",
    "RateIndex",
    "build_rate_index",
    "empty_index",
]

# E.164 numbers have at most 15 digits, so a longer prefix could never match; the bound
# also lets a (plan, kind, direction, prefix) key be packed into one int64.
MAX_PREFIX_DIGITS = 15
OPEN_END_US = 2**62  # an open effective_to, as microseconds since the epoch
_PAD = 10**MAX_PREFIX_DIGITS
# Above this many entries the band/date table is kept as searched segments instead.
DENSE_INDEX_LIMIT = 1 << 23


@dataclass(frozen=True)
class RateIndex:
    """Rate selection (longest prefix, band, dates, tie-breaks) as two array lookups.

    Prefixes: a rate prefix of a (plan, kind, direction) group is the interval of
    keys ``group * 10**15 + callee digits padded with zeros to 15`` that start with
    it. The nested intervals of the deck are flattened into disjoint ones, each
    naming the longest prefix ("node") covering it, so one search in ``starts``
    gives ``nodes``, the longest prefix of a callee. A callee shorter than that
    prefix only met it through its zero padding; its ``parent`` chain (the longest
    shorter prefix in the group) leads to the longest one no longer than the callee.

    Bands and dates: the deck's distinct effective dates (``boundaries``) cut time
    into ``epochs`` (the epoch of t is the number of boundaries <= t), in which the
    set of valid rows is constant. For every node, band slot (0 = no band, b + 1 =
    band b; ``slots`` per node) and epoch, the table names the row rule 7 selects
    among the rows of the node and of its shorter prefixes (longest valid prefix
    applicable to the band, then a named band over ``any``, then the latest
    effective_from), or -1 when none applies and the fallback plan is next. It is
    ``dense`` (indexed by (node * slots + slot) * epochs + epoch) when small
    enough, else segments: sorted ``keys`` (the same index at each segment start)
    and their ``rows``.
    """

    starts: pl.Series
    nodes: pl.Series
    node_length: pl.Series
    parent: pl.Series
    boundaries: pl.Series
    slots: int
    epochs: int
    dense: pl.Series | None
    keys: pl.Series
    rows: pl.Series


def empty_index() -> RateIndex:
    return RateIndex(
        starts=pl.Series([-1], dtype=pl.Int64),
        nodes=pl.Series([-1], dtype=pl.Int32),
        node_length=pl.Series([], dtype=pl.Int64),
        parent=pl.Series([], dtype=pl.Int32),
        boundaries=pl.Series([], dtype=pl.Int64),
        slots=1,
        epochs=1,
        dense=pl.Series([], dtype=pl.Int32),
        keys=pl.Series([], dtype=pl.Int64),
        rows=pl.Series([], dtype=pl.Int32),
    )


def _flatten_prefixes(
    groups: list[int], prefixes: list[str]
) -> tuple[list[int], list[int], list[int]]:
    """Parents of the nodes, and disjoint interval starts with the deepest node of each."""
    node_of = {(g, p): i for i, (g, p) in enumerate(zip(groups, prefixes, strict=True))}
    parent: list[int] = []
    for g, p in zip(groups, prefixes, strict=True):
        found = -1
        for length in range(len(p) - 1, -1, -1):
            found = node_of.get((g, p[:length]), -1)
            if found >= 0:
                break
        parent.append(found)
    lo = [
        g * _PAD + (int(p) * 10 ** (MAX_PREFIX_DIGITS - len(p)) if p else 0)
        for g, p in zip(groups, prefixes, strict=True)
    ]
    hi = [low + 10 ** (MAX_PREFIX_DIGITS - len(p)) for low, p in zip(lo, prefixes, strict=True)]
    # A sweep over the laminar family: at every start or end of an interval, the
    # deepest open interval covers what follows (a later entry at the same key wins).
    covering: dict[int, int] = {-1: -1}
    stack: list[int] = []

    def close(upto: int | None) -> None:
        while stack and (upto is None or hi[stack[-1]] <= upto):
            end = hi[stack.pop()]
            covering[end] = stack[-1] if stack else -1

    for node in sorted(range(len(lo)), key=lambda i: (lo[i], len(prefixes[i]))):
        close(lo[node])
        stack.append(node)
        covering[lo[node]] = node
    close(None)
    starts = sorted(covering)
    return parent, starts, [covering[k] for k in starts]


def build_rate_index(
    keyed: pl.DataFrame, band_counts: list[int], *, dense_limit: int = DENSE_INDEX_LIMIT
) -> RateIndex:
    """Build the :class:`RateIndex` of ``keyed`` (r_idx, group, prefix, r_band, r_from, r_to,
    plan), for plans with ``band_counts`` bands each."""
    if keyed.height == 0:
        return empty_index()
    nodes = keyed.select("group", "prefix").unique().sort("group", "prefix")
    groups, prefixes = nodes["group"].to_list(), nodes["prefix"].to_list()
    parent, starts, covering = _flatten_prefixes(groups, prefixes)
    count = nodes.height
    nodes = nodes.with_row_index("node").with_columns(pl.col("node").cast(pl.Int64))
    rows = keyed.join(nodes, on=["group", "prefix"], how="inner").select(
        pl.col("node").alias("anc"),
        "r_idx",
        pl.col("prefix").str.len_bytes().cast(pl.Int64).alias("length"),
        "r_band",
        "r_from",
        "r_to",
        "plan",
    )
    boundaries, rows = _epochs(rows)
    epochs = boundaries.len() + 1
    slots = 1 + max(band_counts, default=0)
    candidates = _in_cells(_with_descendants(rows, parent, count), band_counts, slots)
    segments = _segments(candidates, epochs)
    size = count * slots * epochs
    return RateIndex(
        starts=pl.Series("starts", starts, dtype=pl.Int64),
        nodes=pl.Series("nodes", covering, dtype=pl.Int32),
        node_length=nodes["prefix"].str.len_bytes().cast(pl.Int64),
        parent=pl.Series("parent", parent, dtype=pl.Int32),
        boundaries=boundaries,
        slots=slots,
        epochs=epochs,
        # Size-dependent: a table of every (cell, epoch) while it stays under the limit (one
        # gather per lookup), else its segments (one search per lookup): big decks fit.
        dense=_dense_table(segments, size, epochs) if size <= dense_limit else None,
        keys=segments["key"],
        rows=segments["r_idx"],
    )


def _epochs(rows: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """The deck's distinct effective dates, and each row's epochs [e_from, e_to)."""
    boundaries = (
        pl.concat([rows["r_from"], rows["r_to"].filter(rows["r_to"] != OPEN_END_US)])
        .unique()
        .sort()
        .alias("b")
    )
    epochs = boundaries.len() + 1
    rows = rows.with_columns(
        pl.lit(boundaries)
        .search_sorted(pl.col("r_from"), side="right")
        .cast(pl.Int64)
        .alias("e_from"),
        pl.when(pl.col("r_to") == OPEN_END_US)
        .then(pl.lit(epochs, dtype=pl.Int64))
        .otherwise(pl.lit(boundaries).search_sorted(pl.col("r_to"), side="right").cast(pl.Int64))
        .alias("e_to"),
    )
    return boundaries, rows


def _with_descendants(rows: pl.DataFrame, parent: list[int], count: int) -> pl.DataFrame:
    """Each row under every node it can rate: its own prefix's and every longer one's."""
    parents = pl.Series("p", parent, dtype=pl.Int64)
    link = pl.DataFrame({"node": pl.int_range(count, eager=True, dtype=pl.Int64)}).with_columns(
        pl.col("node").alias("anc")
    )
    chain = [link]
    while link.height:
        link = link.with_columns(pl.lit(parents).gather(pl.col("anc")).alias("anc")).filter(
            pl.col("anc") >= 0
        )
        chain.append(link)
    return pl.concat(chain).join(rows, on="anc", how="inner")


def _in_cells(candidates: pl.DataFrame, band_counts: list[int], slots: int) -> pl.DataFrame:
    """Candidates per cell (node, band slot): a banded row in its band's slot, an ``any``
    row in every slot of its plan (0 = no band, b + 1 = band b)."""
    slot_frame = pl.DataFrame({"slot": pl.int_range(slots, eager=True, dtype=pl.Int64)})
    counts = pl.Series(band_counts, dtype=pl.Int64)
    return pl.concat(
        [
            candidates.filter(pl.col("r_band") >= 0).with_columns(
                (pl.col("r_band").cast(pl.Int64) + 1).alias("slot")
            ),
            candidates.filter(pl.col("r_band") < 0)
            .join(slot_frame, how="cross")
            .filter(pl.col("slot") <= pl.lit(counts).gather(pl.col("plan"))),
        ]
    ).select(
        (pl.col("node") * slots + pl.col("slot")).alias("cell"),
        "r_idx",
        "length",
        "r_band",
        "r_from",
        "e_from",
        "e_to",
    )


def _segments(candidates: pl.DataFrame, epochs: int) -> pl.DataFrame:
    """Per cell, the epochs where the applicable rows change, with rule 7's choice there
    (longest prefix, then a named band over ``any``, then the latest effective_from;
    -1 when none applies): columns key (cell * epochs + epoch), cell, e, r_idx."""
    # Segment starts of every cell: the epochs where one of its rows starts or ends.
    cell = pl.col("cell") * epochs
    point_keys = (
        pl.concat(
            [
                candidates.select((cell + pl.col("e_from")).alias("key")),
                candidates.filter(pl.col("e_to") < epochs).select(
                    (cell + pl.col("e_to")).alias("key")
                ),
                candidates.select(cell.alias("key")),
            ]
        )["key"]
        .unique()
        .sort()
    )
    points = pl.DataFrame({"key": point_keys}).with_columns(
        (pl.col("key") // epochs).alias("cell"), (pl.col("key") % epochs).alias("e")
    )
    best = (
        points.join(candidates, on="cell", how="inner")
        .filter((pl.col("e_from") <= pl.col("e")) & (pl.col("e") < pl.col("e_to")))
        .sort(["key", "length", "r_band", "r_from"], descending=[False, True, True, True])
        .unique("key", keep="first", maintain_order=True)
        .select("key", "r_idx")
    )
    return points.join(best, on="key", how="left", maintain_order="left").with_columns(
        pl.col("r_idx").fill_null(-1).cast(pl.Int32)
    )


def _dense_table(segments: pl.DataFrame, size: int, epochs: int) -> pl.Series:
    """The segments unrolled: the row of every (cell, epoch), one gather per lookup."""
    end = (
        pl.when(pl.col("cell").shift(-1) == pl.col("cell"))
        .then(pl.col("key").shift(-1))
        .otherwise(pl.col("cell") * epochs + epochs)
    )
    filled = segments.select(pl.int_ranges(pl.col("key"), end).alias("at"), "r_idx").explode(
        "at", empty_as_null=False
    )
    dense = pl.repeat(-1, size, dtype=pl.Int32, eager=True)
    dense.scatter(filled["at"], filled["r_idx"])
    return dense
