"""OneCard SDK: wire formats, key sets and client libraries.

The bottom layer of OneCard (DESIGN.md §1): it imports only the standard library, cryptography, cbor2,
pyjwt and requests, never Flask, SQLAlchemy or another OneCard package, so portals, gates and the reader
bridge can install it alone.
"""
