"""Test-wide configuration: the real control-plane fixtures (``controlplane.pytest_plugin``)."""

pytest_plugins = ["controlplane.pytest_plugin"]
