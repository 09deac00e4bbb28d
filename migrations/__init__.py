"""OneCard's Alembic environment; a package only so that setuptools ships it next to ``idp``."""
