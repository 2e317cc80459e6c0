"""The dead letter queue: entries, their store and processing, where failures are captured
(pool child, worker main, consumer, RabbitMQ's own dead letters) and error fingerprints
(layer 5)."""
