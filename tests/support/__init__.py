"""Helpers the tests share: private servers, waiting on conditions, processes."""
