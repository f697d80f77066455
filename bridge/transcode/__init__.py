"""Request payloads to rows in the target's JSON: decode, timestamps, JSON rows, body encoders."""
