"""Helpers shared by tests: real servers and real instrumented traffic."""
