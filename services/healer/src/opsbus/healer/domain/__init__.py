"""The healer's pure decisions: policies, matching, guards and the planner. No I/O library may be imported here."""
