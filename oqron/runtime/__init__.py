"""The runtime: executing claimed jobs, in-process for tests and scripts, or under the prefork
master (master, children, leadership, recovery)."""
