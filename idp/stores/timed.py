"""An ``EphemeralStore`` that times every operation of the store it wraps
(``onecard_store_operation_duration_seconds{backend, operation}``). The app factory wraps whichever store
``create_store`` chose; the namespace and key never reach a label (keys are card ids, transaction ids)."""

from __future__ import annotations

from idp.observability.metrics import timed_store_operation
from idp.stores.base import EphemeralStore


class TimedStore:
    def __init__(self, inner: EphemeralStore) -> None:
        self.inner = inner
        # SqlStore and RedisStore name themselves; a store from elsewhere (a test's) by its class.
        self.backend: str = getattr(inner, "backend", type(inner).__name__)

    def put(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> None:
        with timed_store_operation(backend=self.backend, operation="put"):
            self.inner.put(namespace, key, value, ttl=ttl, now=now)

    def add(self, namespace: str, key: str, value: bytes, *, ttl: float, now: float) -> bool:
        with timed_store_operation(backend=self.backend, operation="add"):
            return self.inner.add(namespace, key, value, ttl=ttl, now=now)

    def get(self, namespace: str, key: str, *, now: float) -> bytes | None:
        with timed_store_operation(backend=self.backend, operation="get"):
            return self.inner.get(namespace, key, now=now)

    def get_with_expiry(self, namespace: str, key: str, *, now: float) -> tuple[bytes, float] | None:
        with timed_store_operation(backend=self.backend, operation="get_with_expiry"):
            return self.inner.get_with_expiry(namespace, key, now=now)

    def replace(self, namespace: str, key: str, value: bytes, *, now: float) -> bool:
        with timed_store_operation(backend=self.backend, operation="replace"):
            return self.inner.replace(namespace, key, value, now=now)

    def touch(self, namespace: str, key: str, *, ttl: float, now: float) -> bool:
        with timed_store_operation(backend=self.backend, operation="touch"):
            return self.inner.touch(namespace, key, ttl=ttl, now=now)

    def take(self, namespace: str, key: str, *, now: float) -> bytes | None:
        with timed_store_operation(backend=self.backend, operation="take"):
            return self.inner.take(namespace, key, now=now)

    def delete(self, namespace: str, key: str) -> None:
        with timed_store_operation(backend=self.backend, operation="delete"):
            self.inner.delete(namespace, key)

    def incr(self, namespace: str, key: str, *, window: float, now: float) -> int:
        with timed_store_operation(backend=self.backend, operation="incr"):
            return self.inner.incr(namespace, key, window=window, now=now)

    def purge_expired(self, *, now: float) -> int:
        with timed_store_operation(backend=self.backend, operation="purge_expired"):
            return self.inner.purge_expired(now=now)
