"""I/O shared by the components beneath them: the bounded HTTP server for probes and metrics.

Like ``documents`` (the one file loader), it sits above the pure core and below the
components, which never import each other.
"""

from serving.bounded import BoundedServer, Limits, Page, Route

__all__ = ["BoundedServer", "Limits", "Page", "Route"]
