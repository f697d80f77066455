"""For trying and testing the bridge locally: emulated targets, the demo and sample rows."""
