"""The real-name register (持卡人基础信息库): citizens, their encrypted names and ID numbers.

DESIGN.md §2 "PII at rest" and §8.
"""
