"""The read side: one reader per resource the API serves (tasks, metrics, workers, queues,
errors, breakers, KPIs); ``CeleryMonitor`` composes them (layer 6)."""
