"""Key names of the operator side: the alert evaluator, the autoscaling signal, ``warden
serve``'s tokens, sessions and audit log, and its history sampler.

Why a module of its own: :class:`~celery_warden.keys.Keys` inherits these, so there is still one
key builder and one keyspace table (in ``keys.py``'s docstring), but the keys of the workers'
data path and those of the operator's tools are read in separate, shorter places.
"""

from __future__ import annotations


class OperatorKeys:
    """Mixin of :class:`~celery_warden.keys.Keys` (which supplies ``prefix``)."""

    __slots__ = ()
    prefix: str

    @property
    def alert_lease(self) -> str:
        """Held by the one evaluator allowed to notify (owner token, short TTL)."""
        return f"{self.prefix}:alerts:lease"

    @property
    def alert_state(self) -> str:
        return f"{self.prefix}:alerts:state"

    @property
    def alert_history(self) -> str:
        return f"{self.prefix}:alerts:history"

    @property
    def alert_silences(self) -> str:
        return f"{self.prefix}:alerts:silences"

    @property
    def alert_outbox(self) -> str:
        return f"{self.prefix}:alerts:outbox"

    @property
    def alert_sending(self) -> str:
        return f"{self.prefix}:alerts:sending"

    @property
    def alert_failed(self) -> str:
        return f"{self.prefix}:alerts:failed"

    @property
    def alert_stats(self) -> str:
        return f"{self.prefix}:alerts:stats"

    def alert_series(self, name: str) -> str:
        """Samples of a cumulative counter (e.g. recorder drops) to compute its increase."""
        return f"{self.prefix}:alerts:series:{name}"

    def autoscale(self, queue: str) -> str:
        """Recent raw recommendations of one queue (scale-down stabilization)."""
        return f"{self.prefix}:autoscale:{queue}"

    # -- the API server (tokens, sessions, audit log) ---------------------------------------
    @property
    def api_tokens(self) -> str:
        """hash: sha256 hex of a token -> its name, scope and creation time (JSON)."""
        return f"{self.prefix}:api:tokens"

    def api_session(self, digest: str) -> str:
        """A dashboard session (sha256 hex of the cookie) -> the sha256 of its token (TTL)."""
        return f"{self.prefix}:api:session:{digest}"

    @property
    def api_audit(self) -> str:
        """zset of JSON audit entries scored by time (trimmed by age)."""
        return f"{self.prefix}:api:audit"

    # -- history sampled by `warden serve` (queue depth, worker transitions) -----------------
    @property
    def sampler_lease(self) -> str:
        """Held by the one server replica that samples history (owner token, short TTL)."""
        return f"{self.prefix}:sampler:lease"

    @property
    def sampler_state(self) -> str:
        """hash: ``last_sample`` and ``last_sweep`` epoch seconds, ``owner`` of the last one."""
        return f"{self.prefix}:sampler:state"

    def depth_samples(self, queue: str) -> str:
        """list of one queue's depth samples at full resolution, oldest first."""
        return f"{self.prefix}:qd:{queue}"

    def depth_rollups(self, queue: str) -> str:
        """list of one queue's 5-minute depth roll-ups, oldest first."""
        return f"{self.prefix}:qd5:{queue}"

    @property
    def worker_status(self) -> str:
        """hash: hostname -> its last observed status and since when (JSON)."""
        return f"{self.prefix}:workers:status"

    @property
    def worker_history(self) -> str:
        """zset of every worker's online/offline transitions (JSON), scored by time."""
        return f"{self.prefix}:workers:history"

    def worker_transitions(self, hostname: str) -> str:
        """list of one worker's transitions (JSON), newest first."""
        return f"{self.prefix}:wh:{hostname}"


__all__ = ["OperatorKeys"]
