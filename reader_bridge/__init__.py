"""OneCard reader bridge: the local agent between a web page, the cardholder and the card (DESIGN.md §4).

Importing this package loads neither pyscard nor any server framework: ``reader_bridge.transport`` is the
only module that imports ``smartcard`` and it is imported only when a PC/SC terminal is actually used.
"""
