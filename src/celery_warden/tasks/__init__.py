"""Base task classes (BaseTask, RetryableTask, CriticalTask, LongRunningTask) and the backoff
policy they retry with (layer 4)."""
