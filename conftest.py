"""Loads the claims harness plugin for every pytest run in this repository."""

pytest_plugins = ["harness.plugin"]
