"""From the planner's units to a minimum-cost node mix: the pods each scenario places, the
packing problem, first-fit decreasing, lower bounds and the OR-tools solver. Pure apart from
the solver's clock."""
