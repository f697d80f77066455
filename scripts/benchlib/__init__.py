"""scripts/bench.py's parts, by role: processes, load client, roles, references, report."""
