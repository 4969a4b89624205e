import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { createLimit, deleteLimit, findLimit, listLimits, setTimeZone, timeZoneOf, updateLimit, type LimitParams } from '../../flows/payment-limits.ts';
import { unixTime } from '../../objects/common.ts';
import type { PaymentLimitRow, RiskRuleSetRow } from '../../store/database.ts';
import { createRuleSet, currentRuleSet, listRuleSets, testRule, type RuleParams } from '../../flows/risk-rule-sets.ts';
import { requestContext } from '../request-context.ts';
import { Currency, ObjectId, strictObject } from '../schemas.ts';
import { listObject, sendObject } from './common.ts';

const Value = Type.Integer({ minimum: 0, maximum: 99_999_999_999 });
const CreateBody = strictObject({
  subject: Type.Union([Type.Literal('merchant'), Type.Literal('customer'), Type.Literal('card'), Type.Literal('device'), Type.Literal('client_address')]),
  kind: Type.Union([Type.Literal('amount_min'), Type.Literal('amount_max'), Type.Literal('amount_per_day'), Type.Literal('count_per_hour'), Type.Literal('count_per_day')]),
  value: Value,
  currency: Type.Optional(Currency),
});
const UpdateBody = strictObject({ value: Value });
const IdParams = strictObject({ id: ObjectId });
const SettingsBody = strictObject({ time_zone: Type.String({ minLength: 1, maxLength: 64 }) });
const RuleBody = strictObject({
  id: Type.String({ minLength: 1, maxLength: 100 }),
  text: Type.String({ minLength: 1, maxLength: 20_000 }),
  mode: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('shadow')])),
});
export const RuleSetBody = Type.Array(RuleBody, { maxItems: 1_000 });
const TestRuleBody = strictObject({
  rule: Type.String({ minLength: 1, maxLength: 20_000 }),
  attributes: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.String({ maxLength: 500 }), Type.Number(), Type.Boolean()]))),
});

function ruleSetObject(row: RiskRuleSetRow): Record<string, unknown> {
  return { id: row.id, object: 'risk_rule_set', version: row.version, rules: row.rules, livemode: row.livemode, created: unixTime(row.created_at) };
}

function limitObject(row: PaymentLimitRow): Record<string, unknown> {
  return {
    id: row.id, object: 'payment_limit', subject: row.subject, kind: row.kind, value: Number(row.value), currency: row.currency,
    livemode: row.livemode, created: unixTime(row.created_at), updated: unixTime(row.updated_at),
  };
}

/**
 * Payment limits (a Coffer extension, under the `risk` resource): per payment, per day and per hour, by merchant,
 * customer, card, device (`radar_options[session]`) or client address; days in the merchant's time zone.
 */
export function registerRiskLimitRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.post('/v1/risk/limits', { config, schema: { body: CreateBody } }, async (request, reply) =>
    sendObject(reply, limitObject(await createLimit(services, requestContext(request), request.body as LimitParams))));
  app.get('/v1/risk/limits', { config }, async (request, reply) =>
    sendObject(reply, listObject('/v1/risk/limits', (await listLimits(services, requestContext(request))).map(limitObject), false)));
  app.get('/v1/risk/limits/:id', { config, schema: { params: IdParams } }, async (request, reply) =>
    sendObject(reply, limitObject(await findLimit(services.db, requestContext(request), (request.params as { id: string }).id))));
  app.post('/v1/risk/limits/:id', { config, schema: { params: IdParams, body: UpdateBody } }, async (request, reply) =>
    sendObject(reply, limitObject(await updateLimit(services, requestContext(request), (request.params as { id: string }).id, (request.body as { value: number }).value))));
  app.delete('/v1/risk/limits/:id', { config, schema: { params: IdParams } }, async (request, reply) => {
    const deleted = await deleteLimit(services, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, { id: deleted.id, object: 'payment_limit', deleted: true });
  });
  // Rule sets: each change is a new version; the current one is the latest.
  app.post('/v1/risk/rule_sets', { config, schema: { body: strictObject({ rules: RuleSetBody }) } }, async (request, reply) =>
    sendObject(reply, ruleSetObject(await createRuleSet(services, requestContext(request), (request.body as { rules: RuleParams[] }).rules))));
  app.get('/v1/risk/rule_sets', { config }, async (request, reply) =>
    sendObject(reply, listObject('/v1/risk/rule_sets', (await listRuleSets(services, requestContext(request))).map(ruleSetObject), false)));
  app.get('/v1/risk/rule_sets/current', { config }, async (request, reply) =>
    sendObject(reply, ruleSetObject(await currentRuleSet(services, requestContext(request)))));
  app.post('/v1/risk/rules/test', { config, schema: { body: TestRuleBody } }, async (request, reply) => {
    const body = request.body as { rule: string; attributes?: Record<string, unknown> };
    return sendObject(reply, testRule(body.rule, body.attributes ?? {}));
  });
  app.get('/v1/risk/settings', { config }, async (request, reply) =>
    sendObject(reply, { object: 'risk_settings', time_zone: await timeZoneOf(services, requestContext(request)) }));
  app.post('/v1/risk/settings', { config, schema: { body: SettingsBody } }, async (request, reply) =>
    sendObject(reply, { object: 'risk_settings', time_zone: await setTimeZone(services, requestContext(request), (request.body as { time_zone: string }).time_zone) }));
}
