"""The durable job engine: a job table, a worker loop, retries, leases and cron schedules."""
