"""The OpenAPI 3.1 contract of OneCard's own JSON APIs, served at ``/api/openapi.json``.

- ``contract``: the fragment types, the registry on ``Services.api_contract`` and the document built from it;
- ``components``: what every fragment shares — the one error shape, the error responses, the security
  schemes — and the small builders fragments are written with;
- ``validation``: the request hook that checks parameters and JSON bodies against the contract;
- ``views``: the endpoint serving the document.

Each domain's fragment lives beside its views (``idp/admin/contract.py``, ``wallet/scans/contract.py``…).
"""
