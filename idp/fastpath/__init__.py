"""The lean path: a small WSGI layer in front of the Flask application for the hottest requests (issue #16).

It answers three kinds of request itself and hands every other one to Flask unchanged:

- ``POST /token`` with ``grant_type=client_credentials`` from a ``client_secret_basic`` or
  ``client_secret_post`` client that is not bound to DPoP (idp.fastpath.token), when the request succeeds.
  Whatever would be refused — an unknown client, a wrong secret, a scope or grant type it is not registered
  for, a DPoP proof, an extra parameter, plain http to a host that is not loopback (insecure_transport), a
  body whose length is not its Content-Length or that is chunked — goes to Authlib's full path, which gives
  the refusal; so does any request the lean path fails on (Flask's 500). So the lean path only ever gives
  the answer the full path would give (but for the second a registration stays cached, idp.fastpath.token),
  and every error body and header stays Authlib's.
- ``GET`` of the discovery document and of the JWKS (idp.fastpath.published): prepared bytes with an ETag
  and ``304``, rebuilt when the key ring's view changes (a request with If-Match goes to Flask: 412).

- The plug-ins' lean routes (idp.fastpath.routes): the wallet's ``POST /api/v1/gate/verify``
  (wallet.scans.lean).

Every answer gets the headers, request id, request log line and metrics the Flask hooks give. The
middleware is ``idp.fastpath.wsgi.LeanPath``; this package's modules are imported one by one (the route
registry hangs on ``Services``, which the middleware itself needs).
"""
