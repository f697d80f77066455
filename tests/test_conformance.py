"""Conformance: the same tests for every dialect, through a real bridge over loopback gRPC to its emulator.

What a new dialect must pass. It adds a ``Case`` to ``tests/conformance/CASES`` (one per variant that
changes the wire: an API version, a changelog mode) declaring:

* ``make(secret)``: its emulator, taking ``secret`` as the one credential it accepts; the emulator derives
  from ``bridge.dev.emulators.base.Emulator``, so it has ``fail_next(status, body=None, headers=None, times=1)``
  (the next requests get this answer and the target never looks at them) and ``lose_answer_next`` (same
  signature: the rows are kept, then this answer is given), both after its credential check if it has one;
  ``rows`` keeps what it stored, as the target parsed it, and ``requests`` every request;
* ``route(emulator, secret)``: the route mapping to it, its ``auth`` holding the secret;
* ``error(status, message)``: the target's own error answer;
* ``statuses``: its status table, rows of target answer → gRPC code, ErrorInfo reason and upstream_code, the
  message the caller sees, retried or not (RetryInfo exactly when retried), ResourceInfo on NOT_FOUND;
* ``ops``: the ops the route takes, and ``changes`` to read them back (default: every stored row an insert);
* ``batch_id`` and ``ack_key`` if the target deduplicates batches by an id (``None``: it does not).

Then, for every case:

1. a row holding every kind of Value is stored as the target parses it (JSON: nulls, 64-bit integers at the
   edges, doubles, text, base64 bytes, RFC 3339 nanosecond timestamps, lists, maps);
2. each status-table row: the scripted answer gives that code, reason, RetryInfo and number of attempts, and
   the BatchAck in the status counts every row rejected;
3. a 413 splits the batch and every row is stored once, in order; a row refused alone is rejected by index;
4. an error body that echoes the route's credentials reaches the caller scrubbed: the secret is in no status,
   log line or /metrics text;
5. a 503 then success: every row stored once, the ack OK, the retry counted;
6. an op the route does not take (an unknown number included) is rejected by index, the others stored in
   order with their op, and ListRoutes names the ops;
7. with a batch id, an answer lost after the write is resent with the same id and the rows are stored once
   (and without one they are stored twice: at least once, as documented);
8. a request with credentials the target refuses gets the target's own refusal, not retried, even with answers
   scripted: they wait for the next request that passes the check.
``test_every_dialect_has_a_case`` keeps the list complete.
"""

from __future__ import annotations

import logging

import grpc
import pytest

from bridge.dev.emulators import EMULATORS
from bridge.dialects import DIALECTS
from bridge.proto import pb
from tests.conformance import CASES, COLUMNS, KINDS, OP_NAMES, Case, Expect
from tests.conftest import fast_delivery
from tests.grpc_helpers import details, error_info, status_of


@pytest.fixture(params=CASES, ids=lambda c: c.id)
def case(request) -> Case:
    return request.param


@pytest.fixture
def secret(case: Case) -> str:
    # Axiom takes API tokens only (xaat-); the rest take any text.
    return f"xaat-{case.id}-5ecre7-c0nf0rm"


@pytest.fixture
async def target(case: Case, secret: str):
    e = case.make(secret)
    await e.start()
    yield e
    await e.stop()


@pytest.fixture
def open_route(case, target, secret, bridge_factory, channel_factory):
    """open_route(**delivery) -> (bridge, stub) for the case's route, named ``r``."""

    async def make(**delivery):
        r = {**case.route(target, secret), "batch": {"linger": "0s"},
             "delivery": fast_delivery(**{"max_elapsed": "400ms", **delivery})}
        b = await bridge_factory({"r": r})
        return b, channel_factory(b)

    return make


def kv(ids: range, ops: list[int] | None = None, seq: int = 1) -> pb.IngestRequest:
    req = pb.IngestRequest(route="r", sequence=seq, rows=pb.RowBatch(columns=["id", "name"]))
    for pos, i in enumerate(ids):
        req.rows.rows.add(op=ops[pos] if ops else 0).values.extend([pb.Value(int=i), pb.Value(string=f"n{i}")])
    return req


def stored(ids) -> list[dict]:
    return [{"id": i, "name": f"n{i}"} for i in ids]


def script(emulator, answer, times: int = 1) -> None:
    emulator.fail_next(answer.status, answer.body, headers=answer.headers, times=times)


def test_every_dialect_has_a_case():
    assert {c.dialect for c in CASES} == set(DIALECTS)
    assert {c.dialect for c in CASES} <= set(EMULATORS)
    assert len({c.id for c in CASES}) == len(CASES)


async def test_every_value_kind_reads_back_as_the_target_parses_it(case, target, open_route):
    _, stub = await open_route()
    req = pb.IngestRequest(route="r", rows=pb.RowBatch(columns=COLUMNS))
    for i in range(2):
        req.rows.rows.add().values.extend([pb.Value(int=i), pb.Value(string=f"n{i}"), *(k[1] for k in KINDS)])
    ack = await stub.IngestBatch(req)
    assert (ack.accepted, ack.rejected, list(ack.errors)) == (2, 0, [])
    want = [{"id": i, "name": f"n{i}", **{k[0]: k[2] for k in KINDS}} for i in range(2)]
    assert target.rows == want
    assert len(target.requests) == 1


STATUS_ROWS = [pytest.param(c, e, id=f"{c.id}-{e.id}") for c in CASES for e in c.statuses]


@pytest.mark.parametrize(("case", "expect"), STATUS_ROWS)
async def test_the_status_table(case: Case, expect: Expect, target, open_route):
    script(target, expect.answer, times=1000)
    _, stub = await open_route()
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(kv(range(3), seq=7))
    err = ei.value
    assert err.code() == getattr(grpc.StatusCode, expect.code)
    assert expect.said in err.details()
    st = status_of(err)
    info = error_info(st)
    assert info.domain == "ingest-bridge" and info.reason == expect.reason
    assert (info.metadata["http_status"], info.metadata["route"], info.metadata["sequence"]) == (
        str(expect.answer.status), "r", "7")
    assert info.metadata.get("upstream_code", "") == expect.upstream_code
    d = details(st)
    assert ("RetryInfo" in d) == expect.retried
    attempts = len(target.requests)
    if expect.answer.status == 500 and expect.retried:
        assert attempts == 3, "HTTP 500 is tried max_500_attempts times"
    else:
        assert (attempts > 1) == expect.retried
    if expect.code == "NOT_FOUND":
        (res,) = d["ResourceInfo"]
        url = case.route(target, "")["url"]
        assert res.resource_name == expect.resource.format(url=url)
    (ack,) = d["BatchAck"]
    assert (ack.accepted, ack.rejected) == (0, 3)
    assert target.rows == []


async def test_413_splits_the_batch_and_every_row_arrives_once(case, target, open_route):
    script(target, case.error(413, "request entity too large"))
    _, stub = await open_route()
    ack = await stub.IngestBatch(kv(range(6)))
    assert (ack.accepted, ack.rejected) == (6, 0)
    assert target.rows == stored(range(6))
    assert len(target.requests) == 3, "the refused request, then its two halves"


async def test_413_for_a_row_alone_rejects_that_row_by_index(case, target, open_route):
    script(target, case.error(413, "request entity too large"), times=1000)
    _, stub = await open_route()
    ack = await stub.IngestBatch(kv(range(3)))
    assert (ack.accepted, ack.rejected) == (0, 3)
    assert [e.index for e in ack.errors] == [0, 1, 2]
    assert all(e.reason.startswith("ROW_TOO_LARGE") for e in ack.errors)
    assert target.rows == []


async def test_echoed_credentials_reach_no_status_log_or_metrics(case, target, secret, open_route, caplog):
    caplog.set_level(logging.DEBUG)
    forms = [secret, *case.wire(secret)]
    echo = f"denied: credentials {' and '.join(forms)} were sent"
    script(target, case.error(503, echo))
    script(target, case.error(400, echo))
    b, stub = await open_route()
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(kv(range(2)))
    err = ei.value
    assert len(target.requests) == 2, "the echo came twice: once retried, once final"
    shown = [err.details().encode(), *(v if isinstance(v, bytes) else v.encode()
                                       for _, v in err.trailing_metadata() or ())]
    assert b"denied: credentials ***" in shown[0], "the target's message reaches the caller, scrubbed"
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "target answered HTTP 400" in logs and "denied: credentials ***" in logs
    metrics = b.metrics.render()  # the body of /metrics
    assert b"ingest_bridge_retries_total" in metrics
    for form in forms:
        assert all(form.encode() not in text for text in shown), form
        assert form not in logs and form.encode() not in metrics, form


async def test_a_503_then_success_delivers_every_row_once(case, target, open_route):
    script(target, case.error(503, "busy"))
    b, stub = await open_route(max_elapsed="10s")  # room for the retry on a busy machine
    ack = await stub.IngestBatch(kv(range(4)))
    assert (ack.accepted, ack.rejected, ack.status.code) == (4, 0, 0)
    assert len(target.requests) == 2 and target.rows == stored(range(4))
    retried = f'ingest_bridge_retries_total{{reason="UPSTREAM_UNAVAILABLE",route="r",target="{case.dialect}"}} 1.0'
    assert retried.encode() in b.metrics.render()


async def test_unsupported_ops_are_rejected_by_index_and_the_rest_arrive_in_order(case, target, open_route):
    ops = [pb.OP_INSERT, pb.OP_DELETE, pb.OP_UPSERT, 7, pb.OP_INSERT, pb.OP_DELETE]
    _, stub = await open_route()
    (info,) = (await stub.ListRoutes(pb.ListRoutesRequest())).routes
    assert set(info.ops) == set(case.ops)
    ack = await stub.IngestBatch(kv(range(6), ops))
    refused = [i for i, op in enumerate(ops) if op not in case.ops]
    assert [e.index for e in ack.errors] == refused and 3 in refused
    assert "op 7 (unknown) is not supported" in ack.errors[refused.index(3)].reason
    assert (ack.accepted, ack.rejected) == (6 - len(refused), len(refused))
    kept = [i for i in range(6) if i not in refused]
    assert case.applied(target) == [(OP_NAMES[ops[i]], {"id": i, "name": f"n{i}"}) for i in kept]


IDEMPOTENT = [pytest.param(c, id=c.id) for c in CASES if c.batch_id is not None]
AT_LEAST_ONCE = [pytest.param(c, id=c.id) for c in CASES if c.batch_id is None]


@pytest.mark.parametrize("case", IDEMPOTENT)
async def test_a_lost_answer_is_resent_with_the_same_batch_id_and_stored_once(case, target, open_route):
    lost = case.error(503, "lost")
    target.lose_answer_next(lost.status, lost.body, headers=lost.headers)
    _, stub = await open_route()
    ack = await stub.IngestBatch(kv(range(3)))
    assert (ack.accepted, ack.status.code) == (3, 0)
    first, second = target.requests
    assert case.batch_id(first) == case.batch_id(second) == ack.upstream[case.ack_key]
    assert target.rows == stored(range(3))
    # The next batch is a new one: a new id, stored too.
    ack = await stub.IngestBatch(kv(range(3, 5), seq=2))
    assert ack.upstream[case.ack_key] != case.batch_id(first)
    assert target.rows == stored(range(5))


@pytest.mark.parametrize("case", AT_LEAST_ONCE)
async def test_without_a_batch_id_a_lost_answer_stores_the_rows_twice(case, target, open_route):
    lost = case.error(503, "lost")
    target.lose_answer_next(lost.status, lost.body, headers=lost.headers)
    _, stub = await open_route()
    ack = await stub.IngestBatch(kv(range(2)))
    assert (ack.accepted, ack.status.code) == (2, 0)
    assert target.rows == stored(range(2)) * 2


async def test_scripted_answers_come_after_the_credential_check(case, target, open_route, bridge_factory,
                                                                channel_factory):
    target.fail_next(503, headers={"Retry-After": "0"})  # the base's one signature: body and headers optional
    target.lose_answer_next(503)
    if target.checks_credentials:
        wrong = {**case.route(target, "xaat-not-the-secret"), "delivery": fast_delivery(max_elapsed="10s")}
        b = await bridge_factory({"r": wrong})
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await channel_factory(b).IngestBatch(kv(range(2)))
        assert ei.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert "scripted" not in ei.value.details()
        assert len(target.requests) == 1 and target.rows == [], "refused at the door, not retried, nothing kept"
    _, stub = await open_route(max_elapsed="10s")
    ack = await stub.IngestBatch(kv(range(2)))
    assert (ack.accepted, ack.status.code) == (2, 0)
    # The failed answer, the lost one (rows kept), then the retry: stored again unless a batch id dedups it.
    assert len(target.requests) == 3 + target.checks_credentials
    assert target.rows == stored(range(2)) * (1 if case.batch_id else 2)
