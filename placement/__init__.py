"""The pure placement model shared by the extender, the node agent, the planner and the simulator.

Everything that decides where a GPU pod may go lives here as plain functions over frozen
dataclasses, so the simulator shows exactly what the extender does. No module in this package
does I/O, reads a clock or reads the environment: callers pass ``now`` and settings in.
"""
