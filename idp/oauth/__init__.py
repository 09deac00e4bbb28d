"""The OAuth 2.0 / OpenID Connect provider on Authlib: grants and endpoints (server), authorization
decisions (authorize), tokens, claims, discovery, resource protection and logout (DESIGN.md §3)."""
