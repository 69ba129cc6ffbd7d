"""Helpers shared by the test suites: event files, handler loading, small servers."""
