"""The Judge0 CE (v1.13.1) compatible API: Judge0's paths, fields, units, statuses, language ids
and errors, translated onto cellblock's own submissions, queue, workers and jail (README:
"Judge0 CE compatible API" says what differs from upstream and why)."""
