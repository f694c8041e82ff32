"""Peak RSS of `rater run` holding the rating state of 100k tenants.

    .venv/bin/python bench/bench_state_rss.py --tenants 100000 --records 1000000 [--batch N]

Writes a synthetic tariff with that many tenants (bench/make_deck.py: a 50k-row deck),
publishes CDRs spread over all of them, lets `rater run` drain the topic (so every
tenant has a balance, allowance use and dedupe keys in memory), and prints the peak RSS
of the rater process (ru_maxrss of the child) against the 1.5 GB target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_deck import make_cdrs, write_deck
from streamkit import broker, busy_rate, publish_frame, rater_env, run_rater

from rater.stream.topics import TopicSpec, ensure_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rates", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50_000, help="records per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        deck = write_deck(Path(tmp) / "deck", rates=args.rates, tenants=args.tenants)
        cdrs = make_cdrs(args.records, tenants=args.tenants)
        topic = f"rss-cdrs-{uuid.uuid4().hex[:6]}"
        ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, args.partitions)])
        t0 = time.monotonic()
        publish_frame(bootstrap, topic, cdrs)
        print(
            f"published {cdrs.height:,} CDRs for {args.tenants:,} tenants in {time.monotonic() - t0:.0f}s"
        )
        stdout, rss_mb = run_rater(
            rater_env(
                bootstrap, topic, deck, Path(tmp), RATER_STREAM__BATCH_MAX_RECORDS=str(args.batch)
            )
        )
        rate, consumed = busy_rate(stdout)
        print(stdout.strip())
        print(f"tenants with state: {cdrs.get_column('tenant_id').n_unique():,}")
        print(f"peak RSS of rater run: {rss_mb:,} MB (target < 1,536 MB); {rate:,.0f} CDRs/s")
        assert consumed == cdrs.height


if __name__ == "__main__":
    main()
