"""The electronic social security card (DESIGN.md §1, §5): e-card activation, passkey device binding, dynamic
ESSC1 QR codes, venues and their online verification, scan records and usage statistics, and the citizen's
wallet web app.

The wallet stands on idp's public services and on sdk; idp never imports it. It plugs in through the
``onecard.plugins`` entry point (``wallet.plugin:init_app``) and adds its tables through ``onecard.models``
(``wallet.models``). One folder per domain noun, each with the same file set (model, service, errors,
views).
"""
