"""The application catalogue (应用目录, issue 13 item 3): where the social security card and the e-card can be
used, what they do there and what each place learns — kept by staff with a history of every change, and
searchable by anyone (docs/catalogue.md)."""
