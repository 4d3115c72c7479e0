"""The worker: a submission's life (compile, run each test, check, store, publish) and its RQ glue."""
