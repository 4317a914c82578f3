"""opsbus healer: consumes alerts, plans remediations with a pure planner, applies them through one executor."""
