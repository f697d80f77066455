"""Calling the bridge from Python: ``IngestClient`` (batches rows, streams them, resends what was not acknowledged).

``bridge.client.sendfile`` is the ``ingest-bridge send`` command, built on the same contract.
"""

from bridge.client.resume import Reconnect
from bridge.client.sdk import Connection, IngestClient, Totals, to_value

__all__ = ["Connection", "IngestClient", "Reconnect", "Totals", "to_value"]
