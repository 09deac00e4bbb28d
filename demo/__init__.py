"""The complete demo behind ``make run`` (``onecard demo run``): OneCard with the wallet, the example portal
and the reader bridge on a virtual card, seeded with published development data.

Not part of the identity provider: ``idp`` never imports it (import-linter). Its ``onecard demo`` command
group is a plug-in of the ``onecard`` command (the ``onecard.cli`` entry point, as the wallet's ``venues``).

- ``demo.data``: the fixed demo clients, secrets, citizens, card PIN and venue;
- ``demo.runner``: the demo's layout, its seeding of card, portal URIs and venue, and its child processes;
- ``demo.cli``: ``onecard demo seed`` and ``onecard demo run``.
"""
