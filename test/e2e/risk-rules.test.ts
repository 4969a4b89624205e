import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a merchant's risk rules are versioned sets made through the API; a set with a mistake is refused with an
// error naming the rule, the field, and the line and column of the problem, and creates nothing; "test this rule"
// says what a rule would decide for given attributes and which it lacked.
describe('risk rule sets through the API', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => server.close());

  const json = (method: string, path: string, body?: unknown, key = server.secretKey) =>
    rawRequest(server, method, path, { key, ...(body === undefined ? {} : { body: JSON.stringify(body), contentType: 'application/json' }) });

  test('versions: each accepted set is the next version; a set with a mistake is refused, naming where, and changes nothing', async () => {
    const first = await json('POST', '/v1/risk/rule_sets', { rules: [
      { id: 'big_foreign', text: 'block if :amount_usd: > 5000 and :card_country: != :ip_country:' },
      { id: 'watch', text: "review if :email_domain: IN ('mailinator.com')", mode: 'shadow' },
    ] });
    assert.equal(first.status, 200, first.body);
    assert.equal(first.json.version, 1);
    const wrong = await json('POST', '/v1/risk/rule_sets', { rules: [
      { id: 'ok', text: 'allow if :risk_score: < 10' },
      { id: 'typo', text: 'block if :amount_usd: > 100 and :card_countrie: = \'US\'' },
    ] });
    assert.equal(wrong.status, 400);
    const error = wrong.json.error as { param: string; message: string; code: string };
    assert.equal(error.code, 'parameter_invalid');
    assert.equal(error.param, 'rules[1][text]');
    assert.match(error.message, /rule typo \(text, line 1, column 33\): Unknown attribute :card_countrie: — did you mean :card_country:\?/);
    const duplicate = await json('POST', '/v1/risk/rule_sets', { rules: [{ id: 'a', text: 'allow if :risk_score: < 10' }, { id: 'a', text: 'block if :risk_score: > 90' }] });
    assert.equal(duplicate.status, 400);
    assert.equal((duplicate.json.error as { param: string }).param, 'rules[1][id]');
    const versions = await json('GET', '/v1/risk/rule_sets');
    assert.equal((versions.json.data as unknown[]).length, 1, 'the refused sets created nothing');
    const second = await json('POST', '/v1/risk/rule_sets', { rules: [{ id: 'step_up_big', text: 'request_step_up if :amount_usd: > 1000' }] });
    assert.equal(second.json.version, 2);
    const current = await json('GET', '/v1/risk/rule_sets/current');
    assert.equal(current.json.version, 2);
    assert.equal((current.json.rules as Array<{ id: string }>)[0]?.id, 'step_up_big');
    // Another merchant has none of them.
    assert.equal((await json('GET', '/v1/risk/rule_sets/current', undefined, server.otherSecretKey)).status, 404);
    const audit = await server.database.db.selectFrom('audit_log').select('action').where('action', '=', 'risk_rule_set.create').execute();
    assert.equal(audit.length, 2);
  });

  test('test this rule: what it decides for given attributes (form-encoded numbers read as numbers), and what it lacked', async () => {
    const form = (body: string) => rawRequest(server, 'POST', '/v1/risk/rules/test', { key: server.secretKey, body });
    const fired = await form(`rule=${encodeURIComponent('block if :amount_usd: > 5000 and :card_country: != :ip_country:')}&attributes[amount_usd]=6000&attributes[card_country]=US&attributes[ip_country]=FR`);
    assert.equal(fired.status, 200, fired.body);
    assert.equal(fired.json.fired, true);
    assert.equal(fired.json.action, 'block');
    const lacking = await form(`rule=${encodeURIComponent('block if :amount_usd: > 5000 and :card_country: != :ip_country:')}&attributes[amount_usd]=6000&attributes[card_country]=US`);
    assert.equal(lacking.json.fired, false);
    assert.deepEqual(lacking.json.missing, ['ip_country']);
    const badValue = await form(`rule=${encodeURIComponent('block if :amount_usd: > 5000')}&attributes[amount_usd]=lots`);
    assert.equal(badValue.status, 400);
    assert.equal((badValue.json.error as { param: string }).param, 'attributes[amount_usd]');
    const badRule = await form(`rule=${encodeURIComponent('block if :amount_usd: >')}`);
    assert.equal(badRule.status, 400);
    assert.match((badRule.json.error as { message: string }).message, /^line 1, column \d+:/);
  });
});
