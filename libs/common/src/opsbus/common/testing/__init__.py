"""Test support shared by every opsbus test suite: real servers on free ports with temporary storage.

Never imported by production code.
"""
