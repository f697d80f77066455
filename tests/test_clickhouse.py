"""A real database behind the generic HTTP dialect: ClickHouse holds exactly the rows sent, shape by shape."""

from __future__ import annotations

import grpc
import pytest

from bridge.dev import sample
from bridge.proto import pb
from tests.grpc_helpers import details, error_info, status_of

pytestmark = pytest.mark.clickhouse

SCHEMA = ("(id Int64, user String, price Float64, ok UInt8, ts String, category String, count Int32, "
          "message String) ENGINE = Memory")


def expected(i: int) -> dict:
    row = sample.expected_json(i)
    row["ok"] = int(row["ok"])  # a JSON boolean lands in UInt8
    return row


@pytest.mark.parametrize("shape", list(sample.SHAPES))
async def test_each_payload_shape_lands_exactly_once(clickhouse, bridge_factory, channel_factory, tmp_path, shape):
    table = f"shape_{shape}"
    clickhouse.query(f"CREATE TABLE {table} {SCHEMA}")
    desc = sample.write_descriptor_set(tmp_path / "click.desc")
    b = await bridge_factory({"ch": {
        "dialect": "http", "url": clickhouse.http_url, "batch": {"max_rows": 2000, "linger": "20ms"},
        "options": {"query": {"query": f"INSERT INTO {table} FORMAT JSONEachRow"}, "descriptor_set": str(desc)},
    }})
    stub = channel_factory(b)
    n, per = 5000, 700

    async def gen():
        for seq, lo in enumerate(range(0, n, per)):
            yield sample.SHAPES[shape]("ch" if seq == 0 else "", seq, range(lo, min(n, lo + per)))

    acks = [a async for a in stub.IngestStream(gen())]
    assert all(a.status.code == 0 for a in acks), [a.status.message for a in acks if a.status.code]
    assert sum(a.accepted for a in acks) == n
    assert clickhouse.query(f"SELECT count(), uniqExact(id) FROM {table}").split() == [str(n), str(n)]
    assert clickhouse.rows(table) == [expected(i) for i in range(n)]


async def test_gzip_bodies(clickhouse, bridge_factory, channel_factory):
    clickhouse.query(f"CREATE TABLE gz {SCHEMA}")
    b = await bridge_factory({"ch": {
        "dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"},
        "options": {"query": {"query": "INSERT INTO gz FORMAT JSONEachRow"}, "compression": "gzip"},
    }})
    ack = await channel_factory(b).IngestBatch(sample.columns_request("ch", 1, range(300)))
    assert ack.accepted == 300
    assert clickhouse.rows("gz") == [expected(i) for i in range(300)]


async def test_a_missing_table_is_not_found_and_a_bad_value_is_invalid(clickhouse, bridge_factory, channel_factory):
    clickhouse.query("CREATE TABLE typed (id Int64) ENGINE = Memory")
    b = await bridge_factory({
        "missing": {"dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"},
                    "options": {"query": {"query": "INSERT INTO no_such_table FORMAT JSONEachRow"}}},
        "typed": {"dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"},
                  "options": {"query": {"query": "INSERT INTO typed FORMAT JSONEachRow"}}},
    })
    stub = channel_factory(b)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(sample.json_request("missing", 1, range(2)))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Code: 60" in ei.value.details()
    assert error_info(status_of(ei.value)).metadata["http_status"] == "404"

    req = sample.json_request("typed", 2, range(1))
    req.json.objects[0] = b'{"id": "not a number"}'
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.IngestBatch(req)
    # ClickHouse answers HTTP 500; its exception code (27, a parse error) says the row is at fault: not retried.
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    st = status_of(ei.value)
    info = error_info(st)
    assert (info.reason, info.metadata["http_status"], info.metadata["upstream_code"]) == (
        "UPSTREAM_BAD_REQUEST", "500", "27")
    assert "Code: 27" in ei.value.details() and "RetryInfo" not in details(st)
    assert clickhouse.query("SELECT count() FROM typed").strip() == "0"


async def test_csv_keeps_null_and_the_empty_string_apart(clickhouse, bridge_factory, channel_factory):
    clickhouse.query("CREATE TABLE csv_null (id Int64, s Nullable(String), n Nullable(Float64), j String) "
                     "ENGINE = Memory")
    b = await bridge_factory({"ch": {
        "dialect": "http", "url": clickhouse.http_url, "batch": {"linger": "0s"},
        "options": {"format": "csv", "query": {"query": "INSERT INTO csv_null FORMAT CSVWithNames"}},
    }})
    s = [pb.Value(), pb.Value(string=""), pb.Value(string="\\N"), pb.Value(string="NULL"), pb.Value(string=" x ")]
    req = pb.IngestRequest(route="ch", rows=pb.RowBatch(columns=["id", "s", "n", "j"], rows=[
        pb.Row(values=[pb.Value(int=i), v, pb.Value() if i % 2 else pb.Value(double=i + 0.5),
                       pb.Value(list=pb.ListValue(values=[pb.Value(int=i), pb.Value(string='a"b')]))])
        for i, v in enumerate(s)]))
    ack = await channel_factory(b).IngestBatch(req)
    assert (ack.accepted, ack.rejected) == (5, 0)
    got = clickhouse.rows("csv_null")
    assert [r["s"] for r in got] == [None, "", "\\N", "NULL", " x "]
    assert [r["n"] for r in got] == [0.5, None, 2.5, None, 4.5]
    assert [r["j"] for r in got] == [f'[{i},"a\\"b"]' for i in range(5)]
    # JSON rows the same way (ClickHouse 18.16 reads CSVWithNames by position: every key, in table order).
    req = pb.IngestRequest(route="ch", json=pb.JsonBatch(objects=[b'{"id":5,"s":null,"n":0.250,"j":"{}"}',
                                                                  b'{"id":6,"s":"","n":null,"j":""}']))
    assert (await channel_factory(b).IngestBatch(req)).accepted == 2
    assert [(r["s"], r["n"]) for r in clickhouse.rows("csv_null")[5:]] == [(None, 0.25), ("", None)]
