"""Encryption at rest (DESIGN.md §2 "PII at rest", §7 "Private keys are encrypted at rest").

``kek`` wraps secrets (private keys, data keys) under key-encryption keys from the environment;
``pii`` encrypts the real-name register's fields under data keys and computes their blind indexes.
"""
