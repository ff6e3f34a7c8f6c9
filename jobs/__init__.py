"""RQ wiring: queues, the worker process, the clock, and thin job functions."""
