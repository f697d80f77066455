"""The running bridge: routes, the gRPC server (ingest, health, reflection) and the ops HTTP port."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bridge import transcode
from bridge.ingest.access import Access
from bridge.ingest.peeked import Peeked
from bridge.ingest.service import IngestService, Sized
from bridge.model.config import BridgeConfig, TLSConfig
from bridge.model.errors import ConfigError, ListenError
from bridge.ops.metrics import Metrics
from bridge.proto import SERVICE_NAME, pb
from bridge.route.budget import ByteBudget
from bridge.route.pipeline import Lane, RoutePipeline
from bridge.send.transport import Transport
from bridge.spool.spool import Spool
from bridge.transcode import native

log = logging.getLogger("bridge.ingest.server")

# Health service names: "" (the whole bridge), the ingest service, and one per route.
ROUTE_HEALTH_PREFIX = "ingestbridge.v1.route/"


def _handlers(service: IngestService) -> grpc.GenericRpcHandler:
    peek = native.peeker()

    def sized(data: bytes) -> Sized:
        # The wire size is what the request costs in the route's byte budget. A message that does not parse
        # is answered INVALID_ARGUMENT by the service (a raising deserializer would make it INTERNAL).
        # Rows and columns the native transcoder reads from the wire bytes: upb parses them only if asked.
        peeked = peek(data) if peek is not None else None
        if peeked is not None:
            return Peeked(data, *peeked), len(data), None, data
        try:
            return pb.IngestRequest.FromString(data), len(data), None, data
        except DecodeError as e:
            return pb.IngestRequest(), len(data), str(e) or "cannot parse", data

    ser = pb.BatchAck.SerializeToString
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Ingest": grpc.stream_unary_rpc_method_handler(
                service.Ingest, request_deserializer=sized, response_serializer=pb.IngestSummary.SerializeToString
            ),
            "IngestStream": grpc.stream_stream_rpc_method_handler(
                service.IngestStream, request_deserializer=sized, response_serializer=ser
            ),
            "IngestBatch": grpc.unary_unary_rpc_method_handler(
                service.IngestBatch, request_deserializer=sized, response_serializer=ser
            ),
            "ListRoutes": grpc.unary_unary_rpc_method_handler(
                service.ListRoutes,
                request_deserializer=pb.ListRoutesRequest.FromString,
                response_serializer=pb.ListRoutesResponse.SerializeToString,
            ),
        },
    )


def build_routes(config: BridgeConfig, transport: Transport, budget: ByteBudget | None = None,
                 metrics: Metrics | None = None) -> dict[str, RoutePipeline]:
    """Every route's pipeline (dialects and descriptor sets are loaded here: ConfigError if they cannot be)."""
    routes, problems = {}, []
    for name, rc in config.routes.items():
        try:
            routes[name] = RoutePipeline(rc, transport, budget, metrics, config.limits)
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(problems)
    return routes


def _lane_health(lane: Lane, spool: Spool | None) -> dict:
    """One target of a route, for /readyz: whether callers wait for it, its buffer, its last failure; on a
    spooled route with several targets, its cursor's records to deliver and its dead-letter rows."""
    cursor = spool.wal.cursors.get(lane.name) if spool is not None and spool.targets else None
    return {"required": lane.required, "full": lane.full, "buffered_bytes": lane.budget.used,
            "last_failure": lane.last_failure, "transcoder": lane.transcoder.name,
            **({} if lane.required else {"dropped_rows": lane.stats.rows_dropped}),
            **({} if cursor is None or spool is None else {
                "spool_records": cursor.undelivered, "spool_position": cursor.position,
                "dead_letter_rows": spool.dead_letters[lane.name].rows,
                **({"skipped_records": cursor.skipped} if cursor.optional else {})})}


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """The gRPC port's TLS; with a client CA, callers without a certificate it signed are refused (mTLS)."""
    try:
        cert, key = Path(tls.cert).read_bytes(), Path(tls.key).read_bytes()
        ca = Path(tls.client_ca).read_bytes() if tls.client_ca else None
    except OSError as e:
        raise ConfigError(f"tls: cannot read {e.filename}: {e.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def probe_bind(listen: str, reuse_port: bool) -> None:
    """Bind the gRPC address once before grpc does, to name why it cannot be (grpc logs and says only "failed")."""
    host, _, port = listen.rpartition(":")
    if port == "0":
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as e:
        raise ListenError("grpc", listen, f"cannot resolve {host!r}: {e}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise ListenError("grpc", listen, (e.strerror or str(e)).lower()) from None


class Bridge:
    """Start with ``await bridge.start()``; ``port`` is the bound gRPC port; ``await bridge.stop()``."""

    def __init__(self, config: BridgeConfig, listen: str | None = None, http: str | bool | None = True,
                 reuse_port: bool = False) -> None:
        self.config = config
        self.listen = listen or config.listen
        self.http_listen = config.http if http is True else (http or None)
        self.transport = Transport()
        self.budget = ByteBudget(config.limits.max_buffered_bytes)
        self.metrics = Metrics()
        self.routes = build_routes(config, self.transport, self.budget, self.metrics)
        limits = config.limits
        self.service = IngestService(self.routes, Access(config.access), limits.max_pending_acks,
                                     limits.max_rows_per_message, limits.max_calls)
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.http_port = 0
        self._runner: web.AppRunner | None = None
        self._reuse_port = reuse_port
        self.ready = False
        self._health_task: asyncio.Task | None = None
        self._route_state: dict[str, int] = {}
        # Config reloads: one at a time; per route, the switch from its previous version still under way.
        self._reloading = asyncio.Lock()
        self.switching: dict[str, asyncio.Task] = {}
        self._health_names = set(self.routes)

    async def reload(self, path: str | Path) -> bool:
        """Apply a changed configuration file (bridge/ingest/reload.py); False when it is bad (nothing changes)."""
        from bridge.ingest import reload

        async with self._reloading:
            return await reload.reload(self, path)

    async def routes_changed(self) -> None:
        """Health for routes a reload added or removed."""
        unknown = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        for name in [n for n in self.routes if n not in self._health_names]:
            self._health_names.add(name)
            self._route_state[name] = self._state(self.routes[name])
            await self.health.set(ROUTE_HEALTH_PREFIX + name, self._route_state[name])
        for name in [n for n in self._health_names if n not in self.routes]:
            self._health_names.discard(name)
            self._route_state.pop(name, None)
            await self.health.set(ROUTE_HEALTH_PREFIX + name, unknown)

    async def start(self) -> None:
        limits = self.config.limits
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # Callers ping (bridge.client: every 20 s) to find a bridge that stopped answering.
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
                ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000)),
                ("grpc.max_connection_age_ms", int(limits.max_connection_age * 1000)),
                ("grpc.max_connection_age_grace_ms", int(limits.max_connection_age_grace * 1000)),
                ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout * 1000)),
                ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
                ("grpc.http2.bdp_probe", 0),
            ],
        )
        self.server.add_generic_rpc_handlers((_handlers(self.service),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        tls = self.config.tls
        probe_bind(self.listen, self._reuse_port)
        try:
            if tls is None:
                self.port = self.server.add_insecure_port(self.listen)
            else:
                self.port = self.server.add_secure_port(self.listen, server_credentials(tls))
        except RuntimeError:  # grpc says only "Failed to bind"; the likeliest cause is named
            self.port = 0
        if self.port == 0:
            raise ListenError("grpc", self.listen, "the port is in use or the address is not this machine's")
        for route in self.routes.values():
            route.start()
        # Discover routes read their target's schema before the port serves; one that cannot is NOT_SERVING
        # and keeps trying in the background.
        await asyncio.gather(*(r.discovery.first_attempt(r.discovery.timeout + 1.0)
                               for r in self.routes.values() if r.discovery is not None))
        await self.server.start()
        if self.http_listen:
            try:
                await self._start_http(self.http_listen)
            except ListenError:
                # The gRPC port and the routes are up already: release them, quietly (nothing was served).
                log.disabled = True
                try:
                    await self.stop(grace=0)
                finally:
                    log.disabled = False
                raise
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, serving)
        for name, route in self.routes.items():
            self._route_state[name] = self._state(route)
            await self.health.set(ROUTE_HEALTH_PREFIX + name, self._route_state[name])
        self.ready = True
        self._health_task = asyncio.create_task(self._watch_health())
        log.info("listening on %s (gRPC port %d), %d route(s), transcoder: %s", self.listen, self.port,
                 len(self.routes), transcode.active())

    async def _start_http(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_port=self._reuse_port or None)
        try:
            await site.start()
        except OSError as e:
            raise ListenError("http", listen, os.strerror(e.errno).lower() if e.errno else str(e)) from None
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _watch_health(self, interval: float = 0.5) -> None:
        """A route whose buffer is full is NOT_SERVING (it pushes back) until it delivers again."""
        serving = health_pb2.HealthCheckResponse.SERVING
        while True:
            for name, route in list(self.routes.items()):  # a reload may change the routes meanwhile
                state = self._state(route)
                if self._route_state.get(name, serving) != state:
                    self._route_state[name] = state
                    await self.health.set(ROUTE_HEALTH_PREFIX + name, state)
            await asyncio.sleep(interval)

    @staticmethod
    def _state(route: RoutePipeline) -> int:
        """NOT_SERVING while the route's buffer is full, or its target's schema is not known yet."""
        if route.full or route.schema_problem is not None:
            return health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse.SERVING

    async def _healthz(self, _: web.Request) -> web.Response:
        # The gRPC port is here for a caller that dialled this port by mistake (``send`` points it out).
        return web.json_response({"status": "ok", "grpc_port": self.port})

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _readyz(self, _: web.Request) -> web.Response:
        full = self.budget.blocked
        body = {
            "ready": self.ready and not full,
            "buffered_bytes": self.budget.used,
            "transcoder": transcode.active(),
            "routes": {
                name: {"full": r.full, "buffered_bytes": sum(lane.budget.used for lane in r.lanes),
                       "last_failure": r.last_failure, "transcoder": r.transcoder.name,
                       "targets": {lane.name: _lane_health(lane, r.spool) for lane in r.lanes},
                       **({"serving": r.schema_problem is None, "schema_error": r.schema_problem,
                           "columns": len(r.columns)} if r.discovery is not None else {}),
                       **({"spool_bytes": r.spool.disk_bytes, "spool_records": r.spool.wal.undelivered,
                           "dead_letter_rows": r.spool.dead_rows, "spool_error": r.spool.problem}
                          if r.spool is not None else {})}
                for name, r in sorted(self.routes.items())
            },
        }
        # A failing target does not make the pod unready (that would take the app down with it); a full buffer does.
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def stop(self, grace: float | None = None) -> None:
        """Drain, then stop: health NOT_SERVING and new calls refused at once (UNAVAILABLE + RetryInfo,
        BRIDGE_SHUTTING_DOWN); batches in flight have ``grace`` (``limits.shutdown_grace``) to be delivered;
        open calls end once their admitted batches are answered, and what was not delivered in time is
        answered UNAVAILABLE for the caller to resend. A spooled route acknowledges what is fsynced and stops."""
        grace = self.config.limits.shutdown_grace if grace is None else grace
        self.ready = False
        self.service.drain()
        if self._health_task is not None:
            self._health_task.cancel()
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME, *(ROUTE_HEALTH_PREFIX + r for r in self.routes)):
            await self.health.set(name, not_serving)
        log.info("draining: %d call(s) open, up to %.1fs to deliver what is buffered", self.service.calls, grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace + 1.0
        # Routes being switched by a reload finish their old version's drain within the same grace.
        stopping = [r.close(grace) for r in self.routes.values()]
        stopping += [asyncio.wait_for(asyncio.shield(t), grace) for t in list(self.switching.values())]
        await asyncio.gather(*stopping, return_exceptions=True)
        # The calls end by themselves once their tickets are answered; a caller that does not read its
        # answers is not waited for past the grace.
        while self.service.calls > 0 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.server is not None:
            await self.server.stop(max(0.0, min(1.0, deadline - loop.time())))
        if self._runner is not None:
            await self._runner.cleanup()
        await self.transport.close()
        log.info("stopped")
