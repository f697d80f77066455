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
(``ingest-bridge emulate faulty --port P``): ``POST /_script`` with a step
or a JSON list of steps appends them, ``DELETE /_script`` clears the queued
steps and the standing rules, ``POST /_release`` releases stalled
requests, ``GET /_state`` shows the counts.
"""

from __future__ import annotations

import asyncio
import csv

import orjson
from aiohttp import web

from bridge.dev.emulators.base import Emulator, total
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
        self.faults = 0  # requests answered with a scripted failure or dropped
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

    def clear(self) -> None:
        """Drop the queued steps and the standing rules (max_rows, capacity)."""
        self.steps.clear()
        self.max_rows = None
        self.capacity = None

    def release(self) -> None:
        self._released.set()

    def demo_route(self) -> dict:
        # The demo shows retries: failures that a retry survives, with short backoffs so that it stays quick.
        self.script({"status": 503, "times": 2}, {"reset": True},
                    {"status": 429, "headers": {"Retry-After": "0"}}, {"status": 500})
        return {"dialect": "http", "url": self.url + "/ingest", "options": {"format": "ndjson"},
                "delivery": {"initial_backoff": "20ms", "max_backoff": "100ms"}}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/_script", self._control_script)
        app.router.add_delete("/_script", self._control_clear)
        app.router.add_post("/_release", self._control_release)
        app.router.add_get("/_state", self._control_state)
        app.router.add_post("/{tail:.*}", self.ingest)

    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            steps = await request.json()
        except ValueError:
            steps = None
        if isinstance(steps, dict):
            steps = [steps]
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            return web.json_response({"message": "expected a step (a JSON object) or a JSON list of steps"},
                                     status=400)
        problems = [p for s in steps if (p := _check_step(s))]
        if problems:
            return web.json_response({"message": "; ".join(problems)}, status=400)
        self.script(*steps)
        return web.json_response({"steps": len(self.steps)})

    async def _control_clear(self, _: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"steps": 0})

    async def _control_release(self, _: web.Request) -> web.Response:
        self.release()
        return web.json_response({})

    async def _control_state(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": total(self.requests), "rows": total(self.rows),
                                  "steps": len(self.steps), "in_flight": self.in_flight, "refused": self.refused,
                                  "faults": self.faults})

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
                self.faults += 1
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError  # aiohttp drops the request without an answer
            if "slow" in step:
                return await self._slow(request, rows, step, cap)
            status = int(step["status"])
            if 200 <= status < 300:
                self._keep(cap, rows)
            else:
                self.faults += 1
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


_STEP_KEYS = {"status", "body", "headers", "delay", "reset", "slow", "stall", "max_rows", "times", "capacity",
              "latency", "per_request"}


def _check_step(step: dict) -> str | None:
    """What is wrong with a step sent to /_script (a bad one would fail a request later, far from its cause)."""
    unknown = sorted(set(step) - _STEP_KEYS)
    if unknown:
        return (f"unknown key(s) {', '.join(unknown)} in {orjson.dumps(step).decode()}; "
                f"keys: {', '.join(sorted(_STEP_KEYS))}")
    if not ({"status", "delay", "reset", "slow", "stall", "max_rows", "capacity"} & set(step)):
        return (f"{orjson.dumps(step).decode()} says nothing to do: give status, delay, reset, slow, stall, max_rows "
                "or capacity")
    for key in ("status", "times", "max_rows", "capacity"):
        if key in step and (not isinstance(step[key], int) or isinstance(step[key], bool) or step[key] < 0):
            return f"{key} must be a whole number, got {orjson.dumps(step[key]).decode()}"
    return None
