"""What operators watch: Prometheus metrics (``/metrics`` and the separate metrics listener of ``onecard
serve``) and one JSON log line per request (logger ``onecard.request``).

- ``metrics``: every metric OneCard defines, and the small functions the code calls where an outcome is
  decided (a login, a token grant, a gate verdict, a real-name answer, a rate-limit refusal).
- ``web``: the request id, the request log and the per-request metrics (Flask hooks).
- ``database``: statement latency from SQLAlchemy's cursor events.
- ``keys``: key age and time to the next scheduled rotation, computed from the key table at scrape time.
- ``exposition`` and ``multiprocess``: one registry per scrape, aggregated across gunicorn workers.
- ``views``: ``GET /metrics`` on the application, behind a bearer token.

No label ever holds a name, an ID number, a secret, a token or a raw path: labels are endpoint names, wire
codes and other values from fixed sets (a value from outside that is not in its set is counted as "other").
The audit trail (``idp.audit``) stays the record of who did what; nothing here names a citizen.
"""
