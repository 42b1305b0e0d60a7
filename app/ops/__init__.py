"""Operations: what an operator watches and a load balancer asks.

``health`` answers ``/health/live`` and ``/health/ready`` (database reachable, migrations at
head, a worker alive where workers are required); ``metrics`` keeps Prometheus metrics and
serves ``/metrics`` (aggregated across uvicorn workers through ``PROMETHEUS_MULTIPROC_DIR``,
prepared by ``multiproc`` before the workers start); ``observe`` is the pure ASGI middleware
that counts and times every request and gives it a request id; ``logs`` writes log lines as
text or JSON with that request id.
"""
