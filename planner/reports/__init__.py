"""The plan as reports: one typed document, rendered as a terminal table, JSON, Markdown and a
self-contained HTML page with SVG charts. Pure."""
