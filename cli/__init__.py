"""The `cellblock` command: up (everything), api, worker, submit, config."""
