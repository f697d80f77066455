"""ingest-bridge: stream Protobuf rows over gRPC into the REST ingest APIs of streaming databases and log stores."""

__version__ = "0.1.0"
