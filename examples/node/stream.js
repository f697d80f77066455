// Streams typed rows and a columnar batch to ingest-bridge and prints the acks.
// Usage: node stream.js HOST:PORT ROUTE [ROWS]
//
// The caller contract (README): a batch is done once its ack says so. When the stream ends UNAVAILABLE
// (a bridge draining, restarted, or gone: a lost connection), or an ack says UNAVAILABLE, every batch not
// acknowledged is sent again on a new stream, after a bounded, doubling pause. HOST:PORT may name several
// bridges as dns:///NAME:PORT (round_robin below).
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const protos = path.resolve(__dirname, '..', '..', 'protos');
const def = loader.loadSync(path.join(protos, 'ingestbridge/v1/ingest.proto'), {
  includeDirs: [protos], longs: String, enums: String, defaults: true, oneofs: true,
});
const { IngestService } = grpc.loadPackageDefinition(def).ingestbridge.v1;

const [target, route, rowsArg] = process.argv.slice(2);
const rows = Number(rowsArg || 1000);
const client = new IngestService(target, grpc.credentials.createInsecure(), {
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  'grpc.keepalive_time_ms': 20000, 'grpc.keepalive_timeout_ms': 10000,
});
const MAX_ROUNDS = 20, MAX_DELAY_MS = 5000;

function typedRows(start, n) {
  const out = [];
  for (let i = start; i < start + n; i++) {
    out.push({ values: [{ int: String(i) }, { string: `node-${i}` }, { double: i / 4 }, { bool: i % 2 === 0 }] });
  }
  return { columns: ['id', 'name', 'score', 'even'], rows: out };
}

function columnar(start, n) {
  const ids = [], names = [], scores = [], evens = [];
  for (let i = start; i < start + n; i++) { ids.push(String(i)); names.push(`node-${i}`); scores.push(i / 4); evens.push(i % 2 === 0); }
  return { columns: [
    { name: 'id', ints: { values: ids } }, { name: 'name', strings: { values: names } },
    { name: 'score', doubles: { values: scores } }, { name: 'even', bools: { values: evens } },
  ] };
}

// The route's declared columns: what a caller needs to build rows (baseType names the Value field to set).
function listColumns(done) {
  client.ListRoutes({}, (err, resp) => {
    if (err && resendable(err)) { console.log(`ListRoutes: no bridge yet (${err.details}); streaming anyway`); return done(); }
    if (err) { console.error(`ListRoutes failed: ${err.code} ${err.details}`); process.exit(2); }
    const info = resp.routes.find((r) => r.name === route);
    const cols = info ? info.columns.map((c) => `${c.name} ${c.baseType}${c.nullable ? ' (nullable)' : ''}`) : [];
    console.log(`route ${route}: ${cols.length ? cols.join(', ') : 'no declared columns'}`);
    done();
  });
}

const half = Math.floor(rows / 2);
// Not yet acknowledged, by sequence. Each names its route: a resend may open a new stream.
const pending = new Map([
  [0, { route, sequence: 0, rows: typedRows(0, half) }],
  [1, { route, sequence: 1, columns: columnar(half, rows - half) }],
]);
let accepted = 0, failed = 0, resent = 0;

function finish() {
  console.log(`done: ${accepted} rows accepted, ${resent} batches resent`);
  client.close();
  process.exit(failed === 0 && accepted === rows ? 0 : 1);
}

// A connection cut under the call shows as UNAVAILABLE, or as INTERNAL/UNKNOWN without the bridge's details.
function resendable(err) {
  const rich = err.metadata && err.metadata.get('grpc-status-details-bin').length > 0;
  return err.code === grpc.status.UNAVAILABLE
    || ((err.code === grpc.status.INTERNAL || err.code === grpc.status.UNKNOWN) && !rich);
}

function round(n) {
  if (pending.size === 0) return finish();
  if (n === MAX_ROUNDS) {
    console.error(`giving up: ${pending.size} batches not acknowledged after ${n} attempts`);
    process.exit(2);
  }
  if (n > 0) resent += pending.size;
  let over = false;
  const again = () => {
    if (over) return;
    over = true;
    // Full jitter on a doubling pause, capped.
    setTimeout(() => round(n + 1), Math.random() * Math.min(200 * 2 ** n, MAX_DELAY_MS));
  };
  const call = client.IngestStream();
  call.on('data', (ack) => {
    const code = ack.status ? ack.status.code : 0;
    console.log(`ack sequence=${ack.sequence} accepted=${ack.accepted} rejected=${ack.rejected} code=${code}`);
    if (code === grpc.status.UNAVAILABLE) return; // stays pending: sent again in the next round
    if (!pending.delete(Number(ack.sequence))) return; // not one of ours, or already counted
    accepted += ack.accepted;
    if (code !== 0) failed += 1;
  });
  call.on('error', (err) => {
    if (!resendable(err)) {
      console.error(`stream failed: ${err.code} ${err.details}`);
      process.exit(2);
    }
    console.log(`stream failed: UNAVAILABLE ${err.details}; resending ${pending.size} batches not acknowledged`);
    again();
  });
  call.on('end', () => (pending.size === 0 ? finish() : again()));
  for (const req of pending.values()) call.write(req);
  call.end();
}

listColumns(() => round(0));
