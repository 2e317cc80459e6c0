"""Histogram totals moved from their first layout into the packed one (``lua/totals_pack.lua``).

Why: the first layout kept a field per bucket (``metric␟name␟host␟queue␟<slot>``, 16 per label
set), so a ``/metrics`` scrape at 200 task names x 3 queues x 5 hosts read ~45,000 fields — most
of the scrape's Redis time and reply parsing. Recorders now add to one field per label set
(:attr:`celery_warden.keys.Keys.totals_packed`); what the first layout holds — written before
the upgrade, or by recorders of the previous version still running during a rolling upgrade — is
moved here, at scrape time, before the packed hash is read. Totals have no TTL, so without the
move a store upgraded once would pay the old layout's price at every scrape forever.

Exact: each old field is read and deleted in the same atomic script call, so two scrapes moving
at once, or an old recorder adding meanwhile, never count a bucket twice nor lose one (an
increment that lands after a page was moved is moved by the next scrape). A scrape never
reports less than the one before it: the move happens before the read.
"""

from __future__ import annotations

import json
from typing import cast

import redis

from celery_warden import scripts
from celery_warden.keys import Keys
from celery_warden.record.totals import SLOTS

#: Old fields moved per script call: each call holds Redis ~10 ms on a loaded machine.
PAGE = 500


def pack_histograms(client: redis.Redis, keys: Keys) -> int:
    """Move every field of the first histogram layout into the packed hash; the number moved.

    All of it, in one call: a scrape that moved only part would report less than the scrape
    before it (a counter reset, to Prometheus). ``HSCAN`` returns every field present from the
    walk's start to its end, so everything an earlier scrape saw is moved; a field added during
    the walk and missed is moved by the next scrape, which is the first to count it. Once, after
    an upgrade: ~1 s of 46,000 fields (the benchmark's 3,200 label sets) on a loaded machine."""
    move = scripts.script(client, "totals_pack")
    slots = json.dumps(SLOTS)
    moved, cursor = 0, 0
    while True:
        cursor, page = client.hscan(keys.totals_hists, cursor, count=PAGE)
        fields = list(cast(dict[str, str], page))
        if fields:
            moved += int(cast(int, move(keys=[keys.totals_hists, keys.totals_packed,
                                              keys.totals_meta, keys.totals_moved],
                                        args=[slots, *fields])))
        if not cursor:
            break
    return moved


__all__ = ["PAGE", "pack_histograms"]
