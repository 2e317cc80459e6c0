"""Fleet-wide primitives whose state lives in Redis: circuit breakers, idempotency keys, rate
limits, and the deferral that re-schedules a task without spending a retry (layer 3)."""
