"""OpenID Federation 1.0 between OneCard deployments (DESIGN.md §13, docs/federation.md).

The protocol core (``statements``, ``policy``, ``trust_marks``, ``chain``) is plain code over bytes, keys and
``now``; ``service`` keeps the subordinates a trust anchor or intermediate has registered; ``views`` is the
Flask edge (the federation endpoints and the admin API).
"""

ENTITY_CONFIGURATION_PATH = "/.well-known/openid-federation"
