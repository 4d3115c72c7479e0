"""The service core that the API and the worker both stand on: settings, Redis keys, wire
models, the store, metrics counters, log context, the rules a submission's inputs and limits
obey, and the queue. It imports neither `api` nor `worker`, and of the jail only its plain
spec types (see docs/architecture.md)."""
