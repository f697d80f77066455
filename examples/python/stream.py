"""Streams typed rows and a columnar batch to ingest-bridge and prints the acks.

Usage: python examples/python/stream.py HOST:PORT ROUTE [ROWS]
Stubs: python -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. protos/ingestbridge/v1/ingest.proto
(this example uses the stubs the bridge package ships).
"""

from __future__ import annotations

import sys

import grpc

from bridge.proto import pb, pb_grpc


def requests(route: str, rows: int):
    half = rows // 2
    typed = pb.IngestRequest(route=route, sequence=0)
    typed.rows.columns.extend(["id", "name", "score", "even"])
    for i in range(half):
        typed.rows.rows.add().values.extend([pb.Value(int=i), pb.Value(string=f"python-{i}"),
                                             pb.Value(double=i / 4), pb.Value(bool=i % 2 == 0)])
    yield typed
    columnar = pb.IngestRequest(sequence=1)
    ids = range(half, rows)
    c = columnar.columns.columns
    c.add(name="id").ints.values.extend(ids)
    c.add(name="name").strings.values.extend(f"python-{i}" for i in ids)
    c.add(name="score").doubles.values.extend(i / 4 for i in ids)
    c.add(name="even").bools.values.extend(i % 2 == 0 for i in ids)
    yield columnar


def main() -> int:
    target, route = sys.argv[1], sys.argv[2]
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.IngestServiceStub(channel)
        accepted = failed = 0
        for ack in stub.IngestStream(requests(route, rows)):
            print(f"ack sequence={ack.sequence} accepted={ack.accepted} rejected={ack.rejected} "
                  f"code={ack.status.code}")
            accepted += ack.accepted
            failed += ack.status.code != 0
    print(f"done: {accepted} rows accepted")
    return 0 if failed == 0 and accepted == rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
