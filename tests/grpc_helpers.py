"""Reading rich gRPC statuses the way a caller would."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from bridge.proto import pb

DETAIL_TYPES = {
    "ErrorInfo": error_details_pb2.ErrorInfo,
    "RetryInfo": error_details_pb2.RetryInfo,
    "BadRequest": error_details_pb2.BadRequest,
    "ResourceInfo": error_details_pb2.ResourceInfo,
    "BatchAck": pb.BatchAck,
    "IngestSummary": pb.IngestSummary,
}


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no rich status on {err.code()}: {err.details()}")


def details(st: status_pb2.Status) -> dict[str, list]:
    """The status details by type name (each type may appear more than once)."""
    out: dict[str, list] = {}
    for d in st.details:
        for name, cls in DETAIL_TYPES.items():
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                out.setdefault(name, []).append(msg)
    return out


def error_info(st: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    infos = details(st).get("ErrorInfo", [])
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    return infos[0]
