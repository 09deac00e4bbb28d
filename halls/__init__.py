"""Service halls (issue 13): halls, their services and counters, and queue numbers (取号).

A plug-in like the wallet (``halls.plugin.init_app``, the ``onecard.plugins`` entry point). It stands on
idp's service layer and on the wallet's public service functions (a hall's scanner is a wallet venue; its
codes are verified by the gate's own path); neither idp nor the wallet knows it exists.
"""
