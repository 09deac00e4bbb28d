"""Errors of the audit trail."""

from __future__ import annotations

from sdk.errors import ConflictError, InvalidRequestError


class InvalidAuditEventError(InvalidRequestError):
    """An event that must not be recorded: malformed fields, or details that look like PII or secrets."""

    error = "invalid_audit_event"
    description = "The audit event is not valid."


class AuditAppendConflictError(ConflictError):
    """Another node appended the same sequence number; the caller's unit of work must be retried."""

    error = "audit_append_conflict"
    description = "The audit trail changed concurrently; please try again."
