"""Venues: the scenario operators that scan codes at their gates, with a category and a claims policy."""
