"""Initial schema: the register, clients, grants, sessions, consents, keys, audit trail and short-lived store.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 08:14:02+00:00

Drafted by autogenerate from the models of this date, then edited: tables in dependency order, indexes
created with ``op.create_index`` (on SQLite too: a CREATE INDEX needs no batch table rebuild), and the
downgrade dropping tables children first (a dropped table takes its indexes with it). Timestamps are
``DateTime(timezone=True)`` — ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; the models' ``UTCDateTime`` only
adds the UTC conversion in Python. Constraint names follow ``idp.db.NAMING_CONVENTION`` and are spelled out
here, because a migration must not change when the convention or the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The real-name register: PII encrypted, looked up through the unique blind index.
    op.create_table(
        "citizens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name_ct", sa.LargeBinary(), nullable=False),
        sa.Column("id_number_ct", sa.LargeBinary(), nullable=False),
        sa.Column("id_number_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("data_key_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'disabled')", name="ck_citizens_status"),
        sa.PrimaryKeyConstraint("id", name="pk_citizens"),
        sa.UniqueConstraint("id_number_index", name="uq_citizens_id_number_index"),
    )
    op.create_index("ix_citizens_data_key_id", "citizens", ["data_key_id"])

    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("sector_identifier", sa.String(length=255), nullable=True),
        sa.Column("id_token_signed_response_alg", sa.String(length=8), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("id_number_allowed", sa.Boolean(), nullable=False),
        sa.Column("backchannel_logout_uri", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )

    op.create_table(
        "oauth_grants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("sid", sa.String(length=43), nullable=True),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_grants"),
    )
    op.create_index("ix_oauth_grants_citizen_id", "oauth_grants", ["citizen_id"])
    op.create_index("ix_oauth_grants_client_id", "oauth_grants", ["client_id"])
    op.create_index("ix_oauth_grants_sid", "oauth_grants", ["sid"])

    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.String(length=32), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["oauth_grants.id"],
            name="fk_oauth_refresh_tokens_grant_id_oauth_grants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_oauth_refresh_tokens"),
    )
    op.create_index("ix_oauth_refresh_tokens_grant_id", "oauth_refresh_tokens", ["grant_id"])

    op.create_table(
        "sso_sessions",
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sid", name="pk_sso_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_sso_sessions_token_hash"),
    )
    op.create_index("ix_sso_sessions_citizen_id", "sso_sessions", ["citizen_id"])

    op.create_table(
        "sso_session_clients",
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sid"], ["sso_sessions.sid"], name="fk_sso_session_clients_sid_sso_sessions", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sid", "client_id", name="pk_sso_session_clients"),
    )

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        # Named after its first column only, as the naming convention's "uq" pattern has it.
        sa.UniqueConstraint("citizen_id", "client_id", name="uq_consents_citizen_id"),
    )
    op.create_index("ix_consents_citizen_id", "consents", ["citizen_id"])

    # Every key set's versions; private parts wrapped under the key-encryption key.
    op.create_table(
        "crypto_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("key_set", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=True),
        sa.Column("certificate_pem", sa.String(length=8192), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_crypto_keys"),
    )
    op.create_index("ix_crypto_keys_key_set", "crypto_keys", ["key_set"])
    op.create_index("ix_crypto_keys_state", "crypto_keys", ["state"])

    # The hash-chained audit trail; seq is assigned by the application (it is part of the hash).
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])

    # The SQL short-lived store (idp.stores.sql); expires_at is POSIX seconds, indexed for the purge.
    op.create_table(
        "store_entries",
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("counter", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("namespace", "key", name="pk_store_entries"),
    )
    op.create_index("ix_store_entries_expires_at", "store_entries", ["expires_at"])


def downgrade() -> None:
    # Children before the tables they reference; every table takes its indexes and constraints with it.
    for table in (
        "store_entries",
        "audit_events",
        "crypto_keys",
        "consents",
        "sso_session_clients",
        "sso_sessions",
        "oauth_refresh_tokens",
        "oauth_grants",
        "oauth_clients",
        "citizens",
    ):
        op.drop_table(table)
