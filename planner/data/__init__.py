"""Data shipped with the planner: model, node-pool and storage catalogs, and the example fleet."""
