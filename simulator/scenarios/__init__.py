"""Built-in simulation scenarios, shipped as YAML beside this module."""
