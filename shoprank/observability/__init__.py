"""Operations: structured logs with request ids (``logs``), Prometheus metrics (``metrics``), and the rolling
window of recent searches behind the ops page (``window``). Nothing here imports Flask or Celery."""
