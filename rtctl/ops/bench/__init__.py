"""`rtctl bench`: ``report`` (options and the report's arithmetic, pure), ``runner`` (worker
processes, the publisher, the coordinator) and ``observe`` (CPU and per-node figures of the
processes involved)."""
