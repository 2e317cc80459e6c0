"""Every Redis key name Warden uses, built in one place under one prefix.

arq's ``constants.py`` is the model: nothing else in the package formats a key string, so a
reader can see the whole keyspace here and an operator can isolate fleets with
``WARDEN_KEY_PREFIX``.

Keyspace (``P`` = prefix):

=================================  =======  ==================================================
key                                type     holds
=================================  =======  ==================================================
``P:task:<id>``                    hash     one task's record (TTL ``WARDEN_TASK_TTL``)
``P:recent``                       zset     task ids by last update time (listing, id lookup)
``P:ix:n:<name>``                   zset     task ids of one task name by last update (search)
``P:ix:s:<state>``                  zset     task ids in one non-success state by last update
``P:ix:id:<4 hex>`` / ``P:ix:id:~``  zset     task ids by their first 4 hex digits (score 0, lex)
``P:retain:success``               zset     plain successes kept, by when their record expires
``P:retain:cursor``                string   update time up to which the retention sweep has run
``P:m:<name>:<minute>``            hash     per-minute metric bucket for one task name
``P:h:<name>:<hour>``              hash     hourly roll-up of the same fields
``P:fm:<minute>`` / ``P:fh:<hour>``  hash     fleet-wide bucket: every name's bucket folded in
``P:m10:<name>:<start>``           hash     the same per 10 minutes (``block_keys.py``)
``P:fm10:<start>``                 hash     fleet-wide 10-minute block
``P:blocks:since``                 string   start of the first block every writer has written
``P:sm:<minute>`` / ``P:sh:<hour>``  hash     cross-name summary: name -> ``{"success":3,...}``
``P:s10:<start>``                  hash     the same summary per 10 minutes
``P:names``                        zset     task names by last time seen
``P:queues``                       zset     queue names by last time seen
``P:worker:<hostname>``            hash     a worker's latest heartbeat
``P:workers``                      zset     worker hostnames by last heartbeat time
``P:stats:<name>``                 hash     process-level counters (e.g. dropped records)
``P:flushed:<writer>``             string   highest chunk number applied per recorder process
``P:totals:c``                     hash     cumulative event counters by label set (no TTL)
``P:totals:hp``                    hash     cumulative runtime / queue-wait histograms (no TTL)
``P:totals:h`` / ``:hmoved``        hash/set the retired per-bucket layout / label sets moved
``P:totals:meta``                  hash     label sets per task name, caps' overflow (no TTL)
``P:dlq``                          zset     DLQ entry ids by last failure time
``P:dlq:ready`` / ``P:dlq:claims``  zset     entries eligible for requeue / claimed (lease)
``P:dlq:e:<id>``                   hash     one DLQ entry (message, failure, history)
``P:dlq:stats``                    hash     DLQ counters (added, requeued, parked, ...)
``P:deliveries:<id>``              string   redeliveries of a task id (poison pills)
``P:transit:lease``                string   the worker looking for tasks lost in transit (TTL)
``P:purged:<queue>``               string   when ``warden`` last purged a queue (TTL: task TTL)
``P:errors``                       zset     error group fingerprints by last seen
``P:errors:g:<fp>``                hash     one error group (counts, sample, names)
``P:errors:t:<fp>``                list     recent task ids of a group (capped)
``P:errors:m:<fp>:<minute>``       string   failures of a group in one minute
``P:cb:<name>``                    hash     a circuit breaker's state, counters, config
``P:cbw:<name>``                   list     its sliding window of call outcomes (newest first)
``P:cbl:<name>``                   list     its state transitions, newest first (capped)
``P:cbs``                          zset     circuit breaker names by creation time
``P:cbtrips``                      zset     every trip (``<name>|<gen>``) by time (KPI 7)
``P:totals:deferrals``             hash     cumulative deferrals by reason (no TTL, /metrics)
``P:idem:<key>``                   hash     an idempotency key's claim or first result (TTL)
``P:rl:<scope>:<name>``            string   a fleet rate limit's next free slot (GCRA, TTL)
``P:alerts:lease``                 string   the evaluator holding the fleet's alert lease (TTL)
``P:alerts:state``                 hash     pending and firing alerts by fingerprint (JSON)
``P:alerts:history``               list     alert transitions, newest first (capped)
``P:alerts:silences``              hash     silences by id (JSON, with their end)
``P:alerts:outbox`` / ``:sending``  list     notifications to deliver / being delivered
``P:alerts:failed``                list     notifications every attempt failed (capped)
``P:alerts:stats``                 hash     notifications sent / failed per notifier
``P:alerts:series:<name>``         zset     samples of a cumulative counter (``<ts>:<value>``)
``P:autoscale:<queue>``            zset     recent raw recommendations (``<ts>:<n>``)
``P:api:tokens``                   hash     API tokens: sha256 of the token -> name, scope (JSON)
``P:api:session:<sha256>``         string   a dashboard session -> its token's sha256 (TTL)
``P:api:audit``                    zset     the API's audit log (JSON entries by time)
``P:sampler:lease``                string   the ``warden serve`` replica sampling history (TTL)
``P:sampler:state``                hash     last sample and last retention sweep times, owner
``P:qd:<queue>``                   list     queue depth samples ``<ts>:<depth>:<age>`` (24 h)
``P:qd5:<queue>``                  list     5-minute depth roll-ups (avg, max; 7 days)
``P:workers:status``               hash     hostname -> last observed online/offline (JSON)
``P:workers:history``              zset     worker online/offline transitions (JSON, capped)
``P:wh:<hostname>``                list     one worker's transitions, newest first (capped)
=================================  =======  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from celery_warden.block_keys import BlockKeys
from celery_warden.operator_keys import OperatorKeys
from celery_warden.totals_keys import TotalsKeys

MINUTE = 60
BLOCK = 600
HOUR = 3600
#: States with an index of their own (``P:ix:s:<state>``): every Celery state but SUCCESS (the
#: bulk of the records, found through the name index or the recent index instead). A custom
#: state has no index: a search for it walks the recent index.
INDEXED_STATES = ("SENT", "RECEIVED", "STARTED", "RETRY", "FAILURE", "REVOKED", "REJECTED",
                  "IGNORED")


@dataclass(frozen=True, slots=True)
class Keys(OperatorKeys, TotalsKeys, BlockKeys):
    """Key builder for one prefix. Cheap to copy; build it from settings once."""

    prefix: str = "warden"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    @property
    def recent(self) -> str:
        return f"{self.prefix}:recent"

    def task_name_index(self, name: str) -> str:
        """Ids of one task name's records, scored like ``P:recent`` (lua/flush.lua)."""
        return f"{self.prefix}:ix:n:{name}"

    def task_state_index(self, state: str) -> str:
        """Ids of the records now in one of :data:`INDEXED_STATES`, scored like ``P:recent``."""
        return f"{self.prefix}:ix:s:{state}"

    def task_id_bucket(self, head: str) -> str:
        """Ids whose first 4 characters are the lowercase hex digits ``head``, scored by last
        update like :attr:`recent` (an id prefix merges the buckets that can hold it, newest
        first); small enough (~15 ids per million records) for Redis's compact encoding.
        ``~``: every other id, score 0, so ``ZRANGEBYLEX`` answers a custom id's prefix."""
        return f"{self.prefix}:ix:id:{head}"

    @property
    def id_rescore(self) -> str:
        """How far the one-time rescoring of id buckets an older version wrote at score 0 has
        got (the next bucket number, ``done`` at the end; ``lua/id_rescore.lua``)."""
        return f"{self.prefix}:ix:rescored"

    @property
    def retain_success(self) -> str:
        """Plain successes the retention sweep kept, scored by their record's expiry time."""
        return f"{self.prefix}:retain:success"

    @property
    def retain_cursor(self) -> str:
        return f"{self.prefix}:retain:cursor"

    def minute_bucket(self, task_name: str, minute: int) -> str:
        """Bucket for the minute starting at epoch second ``minute`` (a multiple of 60)."""
        return f"{self.prefix}:m:{task_name}:{minute}"

    def hour_bucket(self, task_name: str, hour: int) -> str:
        """Bucket for the hour starting at epoch second ``hour`` (a multiple of 3600)."""
        return f"{self.prefix}:h:{task_name}:{hour}"

    def fleet_minute(self, minute: int) -> str:
        """Every task name's minute bucket folded into one (same fields, exact sums)."""
        return f"{self.prefix}:fm:{minute}"

    def fleet_hour(self, hour: int) -> str:
        """Every task name's hourly roll-up folded into one."""
        return f"{self.prefix}:fh:{hour}"

    def summary_minute(self, minute: int) -> str:
        """A few counters of every task name in one minute: field = task name, value = its
        counters as a JSON object (see :mod:`celery_warden.record.fold`)."""
        return f"{self.prefix}:sm:{minute}"

    def summary_block(self, start: int) -> str:
        """The same summary for the 10 minutes from ``start`` (a multiple of 600)."""
        return f"{self.prefix}:s10:{start}"

    def summary_hour(self, hour: int) -> str:
        """The same summary per hour."""
        return f"{self.prefix}:sh:{hour}"

    @property
    def names(self) -> str:
        return f"{self.prefix}:names"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}:worker:{hostname}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def stats(self, name: str) -> str:
        return f"{self.prefix}:stats:{name}"

    def flush_writer(self, writer_id: str) -> str:
        """Highest chunk number of one writer (a recorder in one process) already applied."""
        return f"{self.prefix}:flushed:{writer_id}"

    # -- dead letter queue ------------------------------------------------------------------
    @property
    def dlq(self) -> str:
        """zset of every entry in the DLQ (pending, claimed, parked) by last failure time."""
        return f"{self.prefix}:dlq"

    @property
    def dlq_ready(self) -> str:
        """zset of entries eligible for automatic requeue, by the time they become eligible."""
        return f"{self.prefix}:dlq:ready"

    @property
    def dlq_claims(self) -> str:
        """zset of entries claimed by a processor, by lease deadline."""
        return f"{self.prefix}:dlq:claims"

    def dlq_entry(self, entry_id: str) -> str:
        return f"{self.prefix}:dlq:e:{entry_id}"

    @property
    def dlq_entry_prefix(self) -> str:
        return f"{self.prefix}:dlq:e:"

    @property
    def dlq_stats(self) -> str:
        return f"{self.prefix}:dlq:stats"

    @property
    def transit_lease(self) -> str:
        """Held by the one worker main process that looks for tasks lost between the Redis
        broker and a worker (:mod:`celery_warden.dlq.transit`; owner token, short TTL)."""
        return f"{self.prefix}:transit:lease"

    def queue_purged(self, queue: str) -> str:
        """When Warden's API last purged ``queue``: tasks sent before it were not lost."""
        return f"{self.prefix}:purged:{queue}"

    def deliveries(self, task_id: str) -> str:
        """Redelivery counter of one task id (poison-pill detection)."""
        return f"{self.prefix}:deliveries:{task_id}"

    # -- error groups -----------------------------------------------------------------------
    @property
    def error_groups(self) -> str:
        """zset of error group fingerprints by last time seen."""
        return f"{self.prefix}:errors"

    def error_group(self, fingerprint: str) -> str:
        return f"{self.prefix}:errors:g:{fingerprint}"

    def error_group_tasks(self, fingerprint: str) -> str:
        """Capped list of recent task ids of one error group."""
        return f"{self.prefix}:errors:t:{fingerprint}"

    def error_group_minute(self, fingerprint: str, minute: int) -> str:
        return f"{self.prefix}:errors:m:{fingerprint}:{minute}"

    # -- fleet primitives (circuit breakers, idempotency, rate limits) ----------------------
    def breaker(self, name: str) -> str:
        return f"{self.prefix}:cb:{name}"

    def breaker_window(self, name: str) -> str:
        return f"{self.prefix}:cbw:{name}"

    def breaker_log(self, name: str) -> str:
        return f"{self.prefix}:cbl:{name}"

    @property
    def breakers(self) -> str:
        return f"{self.prefix}:cbs"

    @property
    def deferral_totals(self) -> str:
        """Cumulative deferrals by reason, folded from completed minute buckets (no TTL)."""
        return f"{self.prefix}:totals:deferrals"

    @property
    def breaker_trips(self) -> str:
        return f"{self.prefix}:cbtrips"

    def idem(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def ratelimit(self, scope: str, name: str) -> str:
        """GCRA state of one fleet rate limit (``scope`` is ``task`` or ``queue``)."""
        return f"{self.prefix}:rl:{scope}:{name}"

    # -- alerts and autoscaling --------------------------------------------------------------
    @property
    def pattern(self) -> str:
        """Glob matching every key under this prefix (for scoped clean-up, never FLUSHDB)."""
        return f"{self.prefix}:*"


def minute_of(ts: float) -> int:
    return int(ts // MINUTE) * MINUTE


def hour_of(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def block_of(ts: float) -> int:
    """Start of the 10-minute block containing ``ts``."""
    return int(ts // BLOCK) * BLOCK


__all__ = ["BLOCK", "HOUR", "INDEXED_STATES", "MINUTE", "Keys", "block_of", "hour_of",
           "minute_of"]
