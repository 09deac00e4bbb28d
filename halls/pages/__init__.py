"""The halls' pages: the citizen's ticket in the wallet, the hall display, the counter page."""
