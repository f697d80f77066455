"""A target that fails on purpose, request by request: for tests, and for users who want to see the bridge retry.

It takes NDJSON, a JSON array or CSV at any path. Each request takes the
next step of the script; with no step left it answers 200 and keeps the rows.
A step is a dict:

* ``{"status": 503, "body": {...}, "headers": {"Retry-After": "2"}}``: answer so (the rows are not kept);
* ``{"delay": 0.5}``: wait, then answer 200 (or the step's ``status``);
* ``{"reset": true}``: close the connection without an answer;
* ``{"slow": 2.0}``: answer 200 (or the step's ``status`` and ``body``) but trickle the body over that many
  seconds;
* ``{"stall": true}``: hold the request until ``release()`` (or ``POST /_release``);
* ``{"max_rows": 10}``: a standing rule, not consumed: 413 for any body of more rows;
* ``{"capacity": 8, "latency": 0.02, "per_request": 0.005}``: a standing rule, a target of limited capacity:
  it serves 8 requests at a time and answers 503 at once to any more; a request it serves takes
  ``latency`` plus ``per_request`` for each request in flight (itself included), so its latency rises with
  load. ``refused`` counts the 503s it gave, ``served_load`` sums the requests in flight as each request it
  served came (over ``served``, the mean concurrency it served at).

``times`` in a step repeats it. From the command line
(``ingest-bridge emulate faulty --port P``): ``POST /_script`` with a JSON
list of steps appends them, ``POST /_release`` releases stalled requests,
``GET /_state`` shows the counts.
"""

from __future__ import annotations

import asyncio
import csv

import orjson
from aiohttp import web

from bridge.dev.emulators.base import Emulator
from bridge.dev.emulators.http_sink import parse_rows


class FaultyTarget(Emulator):
    name = "faulty"

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict] = []
        self.max_rows: int | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.capacity: dict | None = None
        self.refused = 0  # 503s given by the capacity rule
        self.served = self.served_load = 0
        self._released = asyncio.Event()

    def script(self, *steps: dict) -> None:
        for step in steps:
            if "max_rows" in step:
                self.max_rows = step["max_rows"]
                continue
            if "capacity" in step:
                self.capacity = {"capacity": int(step["capacity"]), "latency": float(step.get("latency", 0)),
                                 "per_request": float(step.get("per_request", 0))}
                continue
            self.steps += [step] * int(step.get("times", 1))

    def release(self) -> None:
        self._released.set()

    def demo_route(self) -> dict:
        return {"dialect": "http", "url": self.url + "/ingest", "options": {"format": "ndjson"}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/_script", self._control_script)
        app.router.add_post("/_release", self._control_release)
        app.router.add_get("/_state", self._control_state)
        app.router.add_post("/{tail:.*}", self.ingest)

    async def _control_script(self, request: web.Request) -> web.Response:
        steps = await request.json()
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            return web.json_response({"message": "expected a JSON list of steps"}, status=400)
        self.script(*steps)
        return web.json_response({"steps": len(self.steps)})

    async def _control_release(self, _: web.Request) -> web.Response:
        self.release()
        return web.json_response({})

    async def _control_state(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": len(self.requests), "rows": len(self.rows), "steps": len(self.steps),
                                  "in_flight": self.in_flight, "refused": self.refused})

    async def ingest(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        cap = await self.capture(request)
        try:
            rows = parse_rows(cap.body, request.headers.get("Content-Type", "application/x-ndjson"))
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            return web.json_response({"message": f"cannot parse body: {e}"}, status=400)
        while self.steps:
            step = self.steps.pop(0)
            if "delay" in step:
                await asyncio.sleep(float(step["delay"]))
                if "status" not in step:
                    break
            if step.get("stall"):
                await self._released.wait()
                continue
            if step.get("reset"):
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError  # aiohttp drops the request without an answer
            if "slow" in step:
                return await self._slow(request, rows, step, cap)
            status = int(step["status"])
            if 200 <= status < 300:
                self._keep(cap, rows)
            return web.Response(body=orjson.dumps(step.get("body", {"message": f"scripted {status}"})),
                                status=status, headers=step.get("headers", {}), content_type="application/json")
        if self.capacity is not None:
            c = self.capacity
            load = self.in_flight  # this request included
            if load > c["capacity"]:
                self.refused += 1
                return web.json_response({"message": f"over capacity: {c['capacity']} requests at a time"},
                                         status=503)
            self.served += 1
            self.served_load += load
            await asyncio.sleep(c["latency"] + c["per_request"] * load)
        if self.max_rows is not None and len(rows) > self.max_rows:
            return web.json_response({"message": f"{len(rows)} rows: too large"}, status=413)
        self._keep(cap, rows)
        return web.json_response({"ingested": len(rows)})

    def _keep(self, cap, rows: list) -> None:
        cap.rows = rows
        self.rows.extend(rows)

    async def _slow(self, request: web.Request, rows: list, step: dict, cap) -> web.StreamResponse:
        status = int(step.get("status", 200))
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        body = orjson.dumps(step.get("body", {"ingested": len(rows)}))
        pieces = min(len(body), 40)
        size = -(-len(body) // pieces)
        for i in range(0, len(body), size):
            await resp.write(body[i:i + size])
            await asyncio.sleep(float(step["slow"]) / pieces)
        await resp.write_eof()
        if 200 <= status < 300:
            self._keep(cap, rows)
        return resp
