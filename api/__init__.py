"""The HTTP surface of cellblock (aiohttp): validation, enqueue, results, event streams, docs.

It never runs user code and needs no root; it only talks to Redis.
"""
