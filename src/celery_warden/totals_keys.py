"""Key names of the cumulative totals ``/metrics`` exports (no TTL: Prometheus counters).

Why a module of its own: :class:`~celery_warden.keys.Keys` inherits these, as it does the
operator side's (``operator_keys.py``), so there is still one key builder and one keyspace table
(in ``keys.py``'s docstring); the totals' layouts, old and packed, are described here.
"""

from __future__ import annotations


class TotalsKeys:
    """Mixin of :class:`~celery_warden.keys.Keys` (which supplies ``prefix``)."""

    __slots__ = ()
    prefix: str

    @property
    def totals_counters(self) -> str:
        """Cumulative counters for Prometheus; field ``event␟name␟host␟queue␟exception``."""
        return f"{self.prefix}:totals:c"

    @property
    def totals_hists(self) -> str:
        """Cumulative histograms as first stored, one field per bucket:
        ``metric␟name␟host␟queue␟<bucket index>|s``. Retired: a scrape moves what is left here
        into :attr:`totals_packed` (``lua/totals_pack.lua``); only older recorders write it."""
        return f"{self.prefix}:totals:h"

    @property
    def totals_packed(self) -> str:
        """Cumulative histograms, one field per label set ``metric␟name␟host␟queue``: the
        cumulative bucket counts (the last is ``+Inf``) and the sum, space-separated."""
        return f"{self.prefix}:totals:hp"

    @property
    def totals_moved(self) -> str:
        """Set of the label sets moved from :attr:`totals_hists` to :attr:`totals_packed`
        (keeps a name's label-set cap right while older recorders still write the old hash)."""
        return f"{self.prefix}:totals:hmoved"

    @property
    def totals_meta(self) -> str:
        """Bookkeeping of the totals' caps (names, label sets, exceptions, overflow)."""
        return f"{self.prefix}:totals:meta"


__all__ = ["TotalsKeys"]
