// The least a payment's two requests can cost on this machine: an HTTPS server with no framework and no Coffer
// code, which answers each POST after `COFFER_FLOOR_STATEMENTS` single-row INSERTs, each its own durable commit
// (0: no database at all). `npm run bench -- --floor N` drives it with the payments benchmark's own load; see
// docs/performance.md. Started by bench/payments.ts, never by Coffer.
import https from 'node:https';
import pg from 'pg';
import { loadTlsMaterial, tlsCiphers } from '../src/platform/tls.ts';

const statements = Number(process.env.COFFER_FLOOR_STATEMENTS ?? '1');
const home = process.env.COFFER_HOME ?? '';
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.COFFER_DB_POOL_SIZE ?? '16') });
if (statements > 0) await pool.query('CREATE TABLE IF NOT EXISTS floor_rows (id bigserial PRIMARY KEY, body text NOT NULL)');
const tls = await loadTlsMaterial(home, { certFile: undefined, keyFile: undefined }, Date.now());

let sequence = 0;
const server = https.createServer({ key: tls.key, cert: tls.cert, ciphers: tlsCiphers, minVersion: 'TLSv1.2' }, (request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    void (async () => {
      const body = Buffer.concat(chunks).toString();
      let id = `pi_floor_${(sequence += 1)}`;
      for (let i = 0; i < statements; i += 1) {
        const inserted = await pool.query<{ id: string }>({ name: 'floor_insert', text: 'INSERT INTO floor_rows (body) VALUES ($1) RETURNING id', values: [body] });
        id = `pi_floor_${inserted.rows[0]?.id ?? ''}`;
      }
      const answer = JSON.stringify({ id, object: 'payment_intent', status: 'succeeded' });
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      response.end(answer);
    })().catch((error: unknown) => {
      response.writeHead(500).end(String(error));
    });
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  console.log(`API      https://127.0.0.1:${port}/v1\nReady in 0 ms`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.end().then(() => process.exit(0));
});
