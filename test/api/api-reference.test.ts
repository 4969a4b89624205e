import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { renderApiReference } from '../../src/api/api-reference.ts';
import { merchantRoutesOf } from '../../src/api/public-server.ts';
import { isListRoute } from '../../src/api/routes/common.ts';
import { stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: docs/api-reference.md lists exactly the parameters each merchant route accepts. It is written from the
// routes' schemas, and every route refuses a parameter the reference does not list, or an expansion it does not
// list, naming it and changing nothing: nothing asked for is silently left out.
describe('API reference', () => {
  let server: TestServer;
  const reference = fs.readFileSync(new URL('../../docs/api-reference.md', import.meta.url), 'utf8');
  before(async () => {
    server = await startTestServer();
  });
  after(async () => server.close());

  test('docs/api-reference.md is generated from the routes as registered (npm run docs:api)', () => {
    assert.equal(reference, renderApiReference(merchantRoutesOf(server.coffer.app)), 'run npm run docs:api and commit the result');
  });

  test('a parameter the reference does not list is refused by every route, by name, and changes nothing', async () => {
    const routes = merchantRoutesOf(server.coffer.app);
    assert.ok(routes.length >= 45, `${routes.length} merchant routes`);
    const before = await stateCounts(server.database.db);
    const lax: string[] = [];
    for (const route of routes) {
      assert.ok(reference.includes(`### \`${route.method} ${route.url}\``), `${route.method} ${route.url} has a section`);
      const url = route.url.replace(/:[a-z_]+/g, 'x_unknown');
      const inQuery = route.method === 'GET' || route.method === 'DELETE';
      const response = await rawRequest(server, route.method, inQuery ? `${url}?undocumented_colour=red` : url,
        { key: server.secretKey, ...(inQuery ? {} : { body: 'undocumented_colour=red' }) });
      const error = response.json.error as { code?: string; param?: string } | undefined;
      if (response.status !== 400 || error?.code !== 'parameter_unknown' || error.param !== 'undocumented_colour') lax.push(`${route.method} ${route.url}: ${response.status} ${response.body.slice(0, 120)}`);
    }
    assert.deepEqual(lax, [], 'routes that took an unknown parameter');
    const { idempotency_keys: _before, ...countsBefore } = before;
    const { idempotency_keys: _after, ...countsAfter } = await stateCounts(server.database.db);
    assert.deepEqual(countsAfter, countsBefore);
  });

  test('an expansion a route does not list is refused by every route, by name, before anything runs', async () => {
    const routes = merchantRoutesOf(server.coffer.app);
    const before = await stateCounts(server.database.db);
    const lax: string[] = [];
    let checked = 0;
    for (const route of routes) {
      const url = route.url.replace(/:[a-z_]+/g, 'x_unknown');
      const inQuery = route.method === 'GET' || route.method === 'DELETE';
      const schema = (inQuery ? route.querystring : route.body) as { properties?: Record<string, unknown>; required?: string[] } | undefined;
      if (schema?.properties?.expand === undefined) continue; // refused as an unknown parameter (above)
      if ((schema.required ?? []).length > 0) continue; // refused first for the parameter it lacks
      checked += 1;
      const response = await rawRequest(server, route.method, inQuery ? `${url}?expand[]=not_a_field` : url,
        { key: server.secretKey, ...(inQuery ? {} : { body: 'expand[]=not_a_field' }) });
      const error = response.json.error as { code?: string; param?: string; message?: string } | undefined;
      // On a list, every path starts with data. (the list itself expands nothing), as at Stripe.
      const prefix = isListRoute(route.method, route.querystring) ? 'data.' : '';
      const expected = route.expandable.length === 0 ? 'nothing can be expanded here' : `what can be expanded here: ${route.expandable.map((path) => prefix + path).join(', ')}`;
      if (response.status !== 400 || error?.param !== 'expand' || error.message !== `This property cannot be expanded (not_a_field); ${expected}.`) {
        lax.push(`${route.method} ${route.url}: ${response.status} ${response.body.slice(0, 160)}`);
      }
    }
    assert.deepEqual(lax, [], 'routes that did not refuse expand[]=not_a_field');
    assert.ok(checked >= 30, `${checked} routes checked`);
    const { idempotency_keys: _before, ...countsBefore } = before;
    const { idempotency_keys: _after, ...countsAfter } = await stateCounts(server.database.db);
    assert.deepEqual(countsAfter, countsBefore);
  });
});
