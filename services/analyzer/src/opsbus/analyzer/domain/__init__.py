"""The analyzer's decisions: candidate causes, their scores and the diagnosis, from plain data. No I/O here."""
