"""Telemetry wiring: traces (OpenTelemetry), metrics (Prometheus) and JSON logs. All of it is built in
`main()` and injected; nothing here is a module-level singleton that tests would share."""
