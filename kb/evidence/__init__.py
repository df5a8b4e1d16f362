"""Evidence: turning raw snapshots into text, at ingest and again whenever a quote must be proven."""
