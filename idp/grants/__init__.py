"""Grants: what a citizen authorised a client to do, and the refresh-token family that carries it."""
