"""Operations: Prometheus metrics (``metrics``), the cached backlog gauges (``backlog``), the
metrics endpoints' access rule and the worker's metrics server (``exposition``), structured logs
(``logs``) and gunicorn's hooks (``gunicorn``).
"""
