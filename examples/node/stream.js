// Lists the route's columns (ListRoutes), streams typed rows and a columnar batch, and prints the acks.
// Usage: node stream.js HOST:PORT ROUTE [ROWS]
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
const client = new IngestService(target, grpc.credentials.createInsecure());

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
    if (err) { console.error(`ListRoutes failed: ${err.code} ${err.details}`); process.exit(2); }
    const info = resp.routes.find((r) => r.name === route);
    const cols = info ? info.columns.map((c) => `${c.name} ${c.baseType}${c.nullable ? ' (nullable)' : ''}`) : [];
    console.log(`route ${route}: ${cols.length ? cols.join(', ') : 'no declared columns'}`);
    done();
  });
}

function stream() {
const call = client.IngestStream();
let accepted = 0, failed = 0;
call.on('data', (ack) => {
  accepted += ack.accepted;
  if (ack.status && ack.status.code !== 0) failed += 1;
  console.log(`ack sequence=${ack.sequence} accepted=${ack.accepted} rejected=${ack.rejected} code=${ack.status ? ack.status.code : 0}`);
});
call.on('error', (err) => { console.error(`stream failed: ${err.code} ${err.details}`); process.exit(2); });
call.on('end', () => {
  console.log(`done: ${accepted} rows accepted`);
  client.close();
  process.exit(failed === 0 && accepted === rows ? 0 : 1);
});
const half = Math.floor(rows / 2);
call.write({ route, sequence: 0, rows: typedRows(0, half) });
call.write({ sequence: 1, columns: columnar(half, rows - half) });
call.end();
}

listColumns(stream);
