"""Configuration: the YAML shape, ${ENV} substitution, and errors that name the key and the problem."""

from __future__ import annotations

import pytest
import yaml

from bridge.config import describe, load_config, parse_config, parse_duration, parse_size
from bridge.model.config import MiB, Secret
from bridge.model.errors import ConfigError

BASE = """
routes:
  clicks:
    dialect: http
    url: http://127.0.0.1:8123/
"""


def problems(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        parse_config(text, env=env or {})
    return ei.value.problems


def test_defaults_are_filled_in():
    c = parse_config(BASE, env={})
    r = c.routes["clicks"]
    assert (c.listen, c.http, c.limits.max_message_bytes) == ("127.0.0.1:50051", "127.0.0.1:9464", 16 * MiB)
    assert (r.batch.max_rows, r.batch.max_bytes, r.batch.linger) == (5000, 4 * MiB, 0.2)
    assert (r.delivery.concurrency, r.delivery.timeout, r.delivery.max_elapsed) == (4, 30.0, 300.0)
    assert r.options["format"] == "ndjson" and r.options["timestamps"] == "rfc3339" and r.on_bad_row == "reject_row"


def test_env_substitution_in_every_form_even_inside_a_flow_mapping():
    text = BASE + """    auth: {bearer: ${TOKEN}}
    options: {path: "/${SUB:-x}/$${literal}", csv_header: ${HEADER}}
    batch: {max_rows: ${ROWS}, linger: ${LINGER:-50ms}}
"""
    r = parse_config(text, env={"TOKEN": "s3:cr{e}t#", "HEADER": "false", "ROWS": "7"}).routes["clicks"]
    assert r.auth["bearer"] == Secret("s3:cr{e}t#")
    assert r.options["path"] == "/x/${literal}" and r.options["csv_header"] is False
    assert (r.batch.max_rows, r.batch.linger) == (7, 0.05)


def test_a_missing_variable_names_the_key_and_the_variable_but_no_value():
    found = problems(BASE + "    auth: {bearer: ${NOPE}}\n    options: {path: '${OTHER}'}\n",
                     env={"OTHER": "visible-secret-value"})
    assert found == ["routes.clicks.auth.bearer: environment variable NOPE is not set"]
    assert "visible-secret-value" not in "".join(found)


@pytest.mark.parametrize(("text", "expected"), [
    (BASE.replace("dialect:", "dialekt:"), "routes.clicks: unknown key 'dialekt' (did you mean 'dialect'?)"),
    (BASE + "listn: x\n", "(top level): unknown key 'listn' (did you mean 'listen'?)"),
    (BASE + "    batch: {max_row: 5}\n", "routes.clicks.batch: unknown key 'max_row' (did you mean 'max_rows'?)"),
    (BASE + "    options: {fromat: csv}\n", "routes.clicks.options: unknown key 'fromat' (did you mean 'format'?)"),
    (BASE.replace("http\n", "nosuch\n", 1), "routes.clicks.dialect: unknown dialect 'nosuch'; known: http, timeplus"),
    (BASE.replace("http://127.0.0.1:8123/", "ftp://x"), "routes.clicks.url: expected an http:// or https:// URL"),
    (BASE.replace("127.0.0.1:8123", "u:p@127.0.0.1:8123"), "routes.clicks.url: must not hold credentials"),
    (BASE + "    batch: {max_bytes: 4 lots}\n", "routes.clicks.batch.max_bytes: expected a size such as 4MiB"),
    (BASE + "    delivery: {timeout: 0s}\n", "routes.clicks.delivery.timeout: expected a duration such as 30s (> 0)"),
    (BASE + "    auth: {token: x}\n", "routes.clicks.auth: keys {token} do not fit this dialect"),
    (BASE + "    auth: {headers: {X-K: \"a\\r\\nX-Evil: 1\"}}\n",
     "routes.clicks.auth.headers.X-K: must not contain CR"),
    (BASE + "    columns: {id: integer}\n", "routes.clicks.columns.id: unknown type 'integer'"),
    (BASE + "    options: {format: xml}\n", "routes.clicks.options.format: expected one of ndjson, json, csv"),
    (BASE + "    spool: {max_bytes: 1GiB}\n", "routes.clicks.spool.dir: is required"),
    (BASE + "    spool: {dir: /tmp, fsync: sometimes}\n", "routes.clicks.spool.fsync: expected always, or an interval"),
    (BASE + "    spool: {dir: /nonexistent/a/b}\n", "routes.clicks.spool.dir: /nonexistent/a/b does not exist"),
    ("listen: [1\nroutes: x\n", "not valid YAML"),
    ("routes: {}\n", "routes: is required"),
])
def test_each_problem_names_its_key(text, expected):
    assert any(expected in p for p in problems(text)), problems(text)


def test_every_problem_is_reported_at_once():
    found = problems(BASE + "    batch: {max_rows: -1, linger: soon}\n    on_bad_row: maybe\n")
    assert len(found) == 3


def test_columns_with_nullable_types():
    # In a flow mapping YAML needs the "?" quoted; in block style it does not.
    r = parse_config(BASE + '    columns: {id: int, name: "string?", at: timestamp}\n', env={}).routes["clicks"]
    block = parse_config(BASE + "    columns:\n      id: int\n      name: string?\n      at: timestamp\n", env={})
    assert block.routes["clicks"].columns == r.columns
    assert [(c.name, c.type, c.nullable) for c in r.columns] == [
        ("id", "int", False), ("name", "string", True), ("at", "timestamp", False)]


@pytest.mark.parametrize(("text", "value"), [("512", 512), ("64KiB", 65536), ("4MiB", 4 * MiB), ("4MB", 4_000_000),
                                             ("10kB", 10_000), (2048, 2048)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "value"), [("200ms", 0.2), ("1.5s", 1.5), ("2m", 120), ("1h", 3600),
                                             ("500us", 0.0005), (0, 0.0), ("0", 0.0)])
def test_durations(text, value):
    assert parse_duration(text) == pytest.approx(value)


@pytest.mark.parametrize("value", ["200", "1.5", "'200'"])
def test_a_duration_without_a_unit_is_an_error_that_lists_the_units(value):
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + f"    batch: {{linger: {value}}}\n    delivery: {{timeout: {value}}}\n", env={})
    assert e.value.problems == [
        f"routes.clicks.batch.linger: a duration needs a unit, got {v!r}; units: us, ms, s, m, h (200ms, 30s, 15m)"
        for v in [yaml.safe_load(value)]
    ] + [f"routes.clicks.delivery.timeout: a duration needs a unit, got {yaml.safe_load(value)!r}; "
         "units: us, ms, s, m, h (200ms, 30s, 15m)"]


def test_every_unknown_key_of_one_mapping_is_reported():
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + "    batch: {max_row: 5, lingr: 200ms, max_rows: 7}\n", env={})
    assert e.value.problems == [
        "routes.clicks.batch: unknown key 'max_row' (did you mean 'max_rows'?)",
        "routes.clicks.batch: unknown key 'lingr' (did you mean 'linger'?)",
    ]


def test_describe_masks_secrets_and_a_missing_file_is_named(tmp_path):
    text = describe(parse_config(BASE + "    auth: {headers: {X-Key: hunter2-secret}}\n", env={}))
    assert "hunter2-secret" not in text and "***" in text and "route clicks: dialect=http" in text
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the configuration"):
        load_config(tmp_path / "nope.yaml")
    assert repr(Secret("x")) == "Secret('***')"


def test_describe_shows_spool_and_callers_without_their_tokens(tmp_path):
    text = describe(parse_config(
        BASE + f"    spool: {{dir: {tmp_path}, max_bytes: 2GiB, fsync: 5ms}}\n"
        "access: {tokens: [{name: checkout, token: tok-9c41e0aa, routes: [clicks]}]}\n", env={}))
    assert f"spool: dir={tmp_path}/clicks max_bytes=2147483648 fsync=every 5ms" in text
    assert "access: token checkout (***) may use clicks" in text
    assert "tok-9c41e0aa" not in text


def test_describe_shows_the_user_name_and_masks_the_password():
    text = describe(parse_config(BASE.replace("dialect: http", "dialect: timeplus") + "    target: clicks\n"
                                 "    auth: {username: ingest-user, password: pw-Secret-9}\n", env={}))
    assert "auth: {'username': 'ingest-user', 'password': '***'}" in text
    assert "pw-Secret-9" not in text
