import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OP_INSERT: _ClassVar[Op]
    OP_DELETE: _ClassVar[Op]
    OP_UPSERT: _ClassVar[Op]
OP_INSERT: Op
OP_DELETE: Op
OP_UPSERT: Op

class IngestRequest(_message.Message):
    __slots__ = ("route", "sequence", "rows", "columns", "messages", "json")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    route: str
    sequence: int
    rows: RowBatch
    columns: ColumnBatch
    messages: MessageBatch
    json: JsonBatch
    def __init__(self, route: _Optional[str] = ..., sequence: _Optional[int] = ..., rows: _Optional[_Union[RowBatch, _Mapping]] = ..., columns: _Optional[_Union[ColumnBatch, _Mapping]] = ..., messages: _Optional[_Union[MessageBatch, _Mapping]] = ..., json: _Optional[_Union[JsonBatch, _Mapping]] = ...) -> None: ...

class RowBatch(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values", "op")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    op: Op
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., op: _Optional[_Union[Op, str]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null", "bool", "int", "uint", "double", "string", "bytes", "timestamp", "list", "map")
    NULL_FIELD_NUMBER: _ClassVar[int]
    BOOL_FIELD_NUMBER: _ClassVar[int]
    INT_FIELD_NUMBER: _ClassVar[int]
    UINT_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    null: _struct_pb2.NullValue
    bool: bool
    int: int
    uint: int
    double: float
    string: str
    bytes: bytes
    timestamp: _timestamp_pb2.Timestamp
    list: ListValue
    map: MapValue
    def __init__(self, null: _Optional[_Union[_struct_pb2.NullValue, str]] = ..., bool: _Optional[bool] = ..., int: _Optional[int] = ..., uint: _Optional[int] = ..., double: _Optional[float] = ..., string: _Optional[str] = ..., bytes: _Optional[bytes] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., list: _Optional[_Union[ListValue, _Mapping]] = ..., map: _Optional[_Union[MapValue, _Mapping]] = ...) -> None: ...

class ListValue(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class MapValue(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Value]
    def __init__(self, fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class ColumnBatch(_message.Message):
    __slots__ = ("columns", "ops")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    ops: _containers.RepeatedScalarFieldContainer[Op]
    def __init__(self, columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., ops: _Optional[_Iterable[_Union[Op, str]]] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "ints", "uints", "doubles", "bools", "strings", "bytes", "timestamps", "values", "null_rows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    UINTS_FIELD_NUMBER: _ClassVar[int]
    DOUBLES_FIELD_NUMBER: _ClassVar[int]
    BOOLS_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NULL_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    ints: Int64s
    uints: UInt64s
    doubles: Doubles
    bools: Bools
    strings: Strings
    bytes: BytesList
    timestamps: Timestamps
    values: ListValue
    null_rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., ints: _Optional[_Union[Int64s, _Mapping]] = ..., uints: _Optional[_Union[UInt64s, _Mapping]] = ..., doubles: _Optional[_Union[Doubles, _Mapping]] = ..., bools: _Optional[_Union[Bools, _Mapping]] = ..., strings: _Optional[_Union[Strings, _Mapping]] = ..., bytes: _Optional[_Union[BytesList, _Mapping]] = ..., timestamps: _Optional[_Union[Timestamps, _Mapping]] = ..., values: _Optional[_Union[ListValue, _Mapping]] = ..., null_rows: _Optional[_Iterable[int]] = ...) -> None: ...

class Int64s(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class UInt64s(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class Doubles(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Bools(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, values: _Optional[_Iterable[bool]] = ...) -> None: ...

class Strings(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class BytesList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Timestamps(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("type", "messages", "ops")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    type: str
    messages: _containers.RepeatedScalarFieldContainer[bytes]
    ops: _containers.RepeatedScalarFieldContainer[Op]
    def __init__(self, type: _Optional[str] = ..., messages: _Optional[_Iterable[bytes]] = ..., ops: _Optional[_Iterable[_Union[Op, str]]] = ...) -> None: ...

class JsonBatch(_message.Message):
    __slots__ = ("objects", "ops")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedScalarFieldContainer[bytes]
    ops: _containers.RepeatedScalarFieldContainer[Op]
    def __init__(self, objects: _Optional[_Iterable[bytes]] = ..., ops: _Optional[_Iterable[_Union[Op, str]]] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("sequence", "route", "accepted", "rejected", "errors", "status", "upstream")
    class UpstreamEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    route: str
    accepted: int
    rejected: int
    errors: _containers.RepeatedCompositeFieldContainer[RowError]
    status: _status_pb2.Status
    upstream: _containers.ScalarMap[str, str]
    def __init__(self, sequence: _Optional[int] = ..., route: _Optional[str] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., upstream: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("index", "column", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    column: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., column: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class IngestSummary(_message.Message):
    __slots__ = ("batches", "accepted", "rejected", "failed")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    batches: int
    accepted: int
    rejected: int
    failed: _containers.RepeatedCompositeFieldContainer[BatchAck]
    def __init__(self, batches: _Optional[int] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., failed: _Optional[_Iterable[_Union[BatchAck, _Mapping]]] = ...) -> None: ...

class ListRoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRoutesResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RouteInfo]
    def __init__(self, routes: _Optional[_Iterable[_Union[RouteInfo, _Mapping]]] = ...) -> None: ...

class RouteInfo(_message.Message):
    __slots__ = ("name", "dialect", "columns", "ops", "max_rows_per_request", "targets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dialect: str
    columns: _containers.RepeatedCompositeFieldContainer[ColumnInfo]
    ops: _containers.RepeatedScalarFieldContainer[Op]
    max_rows_per_request: int
    targets: _containers.RepeatedCompositeFieldContainer[TargetInfo]
    def __init__(self, name: _Optional[str] = ..., dialect: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[ColumnInfo, _Mapping]]] = ..., ops: _Optional[_Iterable[_Union[Op, str]]] = ..., max_rows_per_request: _Optional[int] = ..., targets: _Optional[_Iterable[_Union[TargetInfo, _Mapping]]] = ...) -> None: ...

class TargetInfo(_message.Message):
    __slots__ = ("name", "dialect", "required", "ops", "max_rows_per_request")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    dialect: str
    required: bool
    ops: _containers.RepeatedScalarFieldContainer[Op]
    max_rows_per_request: int
    def __init__(self, name: _Optional[str] = ..., dialect: _Optional[str] = ..., required: _Optional[bool] = ..., ops: _Optional[_Iterable[_Union[Op, str]]] = ..., max_rows_per_request: _Optional[int] = ...) -> None: ...

class ColumnInfo(_message.Message):
    __slots__ = ("name", "type", "nullable", "base_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    BASE_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    nullable: bool
    base_type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., nullable: _Optional[bool] = ..., base_type: _Optional[str] = ...) -> None: ...
