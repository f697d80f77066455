"""The generated contract, under short names."""

from bridge._proto.ingestbridge.v1 import ingest_pb2 as pb
from bridge._proto.ingestbridge.v1 import ingest_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IngestService"].full_name

__all__ = ["SERVICE_NAME", "pb", "pb_grpc"]
