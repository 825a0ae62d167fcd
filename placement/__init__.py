"""The pure placement model shared by the extender, the node agent, the planner and the simulator.

Everything that decides where a GPU pod may go lives here. The vocabulary is frozen dataclasses
(``placement.model``); the rules are plain functions over them, written to be read one node at
a time (``placement.fit``, ``placement.policies``, ``placement.reference``). The extender does
not run that readable form per request: it keeps its view in a mutable ``placement.fleet.Fleet``
(numpy arrays updated as reports arrive, with their ``placement.claims``) and calls the fleet's
vectorized fast path, ``decide_fleet``, which a hypothesis test holds equal to
``placement.reference.decide``. No module in this package does I/O, reads a clock or reads the
environment: callers pass ``now`` and settings in, and serialize updates to a fleet with reads.
"""
