"""The planner's inputs: InferenceServices and KServe objects (from files or a live cluster),
the node-pool catalog, the model catalog, and traffic profiles with storage tiers.

Each reader turns raw YAML or API objects into frozen values and reports every problem at once.
"""
