"""RQ job entry points and the worker/scheduler processes."""
