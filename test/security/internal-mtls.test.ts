import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { inviteStaffUser } from '../../src/identity/staff.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { startCoffer } from '../../src/app/start-coffer.ts';
import { TestClock } from '../support/clock.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { enrollWithToken, StaffClient, strongPassword } from '../support/staff.ts';

interface Issued {
  caCert: string;
  clientCert: string;
  clientKey: string;
}

/** A certificate authority for staff devices, and one client certificate it issued. */
async function staffCa(name: string): Promise<Issued> {
  const issued = await generate([{ name: 'commonName', value: `${name} staff CA` }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256',
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
    clientCertificate: { cn: `${name} laptop`, keyType: 'ec', curve: 'P-256', algorithm: 'sha256' },
  });
  assert.ok(issued.clientcert !== undefined && issued.clientprivate !== undefined);
  return { caCert: issued.cert, clientCert: issued.clientcert, clientKey: issued.clientprivate };
}

// Goal: with COFFER_INTERNAL_CLIENT_CA set, the internal listener completes no request from a client without a
// certificate issued by that CA (none, or one from another CA), while staff with one sign in as usual; the public
// listener is unaffected; a missing or malformed CA file stops the start with a message naming it.
describe('mutual TLS on the internal listener', { concurrency: false }, () => {
  let server: TestServer;
  let ours: Issued;
  let theirs: Issued;
  const clock = new TestClock();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-mtls-'));

  before(async () => {
    ours = await staffCa('Coffer');
    theirs = await staffCa('Elsewhere');
    fs.writeFileSync(path.join(dir, 'staff-ca.pem'), ours.caCert);
    server = await startTestServer({ clock, configEnv: { COFFER_INTERNAL_CLIENT_CA: path.join(dir, 'staff-ca.pem') } });
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const internal = (client?: { cert: string; key: string }) => ({
    port: server.coffer.internalPort,
    agent: new https.Agent({ ca: fs.readFileSync(server.coffer.certFile ?? '', 'utf8'), keepAlive: false, ...(client ?? {}) }),
  });

  test('no client certificate, or one from another CA: the connection is refused and nothing is done', async () => {
    const users = async () => (await server.database.db.selectFrom('staff_sessions').select('id').execute()).length;
    const before = await users();
    const body = { email: 'owner@example.com', password: strongPassword('x') };
    await assert.rejects(rawRequest(internal(), 'POST', '/staff/v1/session', { body: JSON.stringify(body), contentType: 'application/json' }),
      /certificate required|socket hang up|ECONNRESET|alert/i);
    await assert.rejects(rawRequest(internal({ cert: theirs.clientCert, key: theirs.clientKey }), 'GET', '/staff/v1/session', {}),
      /unknown ca|certificate|socket hang up|ECONNRESET|alert/i);
    assert.equal(await users(), before, 'no session was started');

    // The public listener asks for no client certificate.
    const balance = await rawRequest(server, 'GET', '/v1/payment_intents', { key: server.secretKey });
    assert.equal(balance.status, 200, balance.body);
  });

  test('with a certificate from the configured CA, staff enroll and sign in as usual', async () => {
    const listener = internal({ cert: ours.clientCert, key: ours.clientKey });
    const anonymous = await rawRequest(listener, 'GET', '/staff/v1/session', {});
    assert.equal(anonymous.status, 401, 'the request reached the staff API');
    const invited = await server.database.db.transaction().execute((tx) =>
      inviteStaffUser(tx, { email: 'mtls.owner@example.com', name: 'Owner', role: 'owner', createdBy: 'test' }, new Date(clock.nowMs())));
    const client = new StaffClient(listener, clock);
    await enrollWithToken(client, invited.enrollmentToken.reveal(), strongPassword('mtls'));
    const signed = await client.signIn();
    assert.equal(signed.status, 200, signed.body);
  });

  test('a missing or malformed CA file, or mutual TLS without TLS, stops the start naming the problem', async () => {
    // The CA is read before anything is opened or bound: these starts fail first thing, on the running server's database.
    const home = fs.mkdtempSync(path.join(dir, 'home-'));
    const start = (caFile: string) => startCoffer({
      config: loadConfig({ COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'silent', COFFER_JOBS: 'false', COFFER_INTERNAL_CLIENT_CA: caFile }),
      database: server.database, env: {},
    });
    await assert.rejects(start(path.join(dir, 'absent.pem')), /COFFER_INTERNAL_CLIENT_CA: cannot read .*absent\.pem \(ENOENT\)/);
    fs.writeFileSync(path.join(dir, 'not-a-cert.pem'), 'hello');
    await assert.rejects(start(path.join(dir, 'not-a-cert.pem')), /COFFER_INTERNAL_CLIENT_CA: .*not-a-cert\.pem holds no PEM certificate/);
    assert.throws(() => loadConfig({ COFFER_INTERNAL_CLIENT_CA: 'ca.pem', COFFER_TLS_DISABLED: 'true' }), /COFFER_INTERNAL_CLIENT_CA needs TLS/);
  });
});
