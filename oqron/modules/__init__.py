"""The modules a process can switch on: queue, worker, cron, scheduler, webhook, ratelimit."""
