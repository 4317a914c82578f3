"""The optimizer's pure decisions: histograms, vertical and horizontal recommenders, cost, guardrails, the planner.

Plain data in, plain data out, the clock passed in. No I/O library may be imported here (checked by
import-linter), so the replay benchmark and the unit tests run the very code the service runs.
"""
