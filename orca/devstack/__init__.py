"""The embedded stack behind `orca dev`: every real server ORCA needs, as local child processes."""
