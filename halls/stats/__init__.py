"""Per-hall statistics: waiting time and served per hour, for the admin page."""
