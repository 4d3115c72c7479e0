"""The Piston v2 compatible API: Piston's paths, runtimes, request fields, units and result
objects, translated onto cellblock's own submissions, queue, workers and jail (README: "Piston
v2 compatible API" says what differs from upstream and why)."""
