"""opsbus analyzer: builds, scores and publishes the probable causes of each incident (diagnosis.made/revised)."""
