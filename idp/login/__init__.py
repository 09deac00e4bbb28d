"""Logging citizens in: login transactions, the login-method plug-in interface, login and consent pages."""
