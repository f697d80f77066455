"""Operating the bridge: metrics, logs and redaction of secrets."""
