import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { createLimit, deleteLimit, findLimit, listLimits, riskSettingsOf, updateLimit, updateRiskSettings, type LimitParams, type RiskSettings } from '../../flows/payment-limits.ts';
import { backtestRuleSet, decisionObject, findDecision, historyLimitMax, listDecisions, replayDecisions, type BacktestParams } from '../../flows/risk-history.ts';
import { unixTime } from '../../objects/common.ts';
import type { PaymentLimitRow, RiskRuleSetRow } from '../../store/database.ts';
import { createRuleSet, currentRuleSet, listRuleSets, testRule, type RuleParams } from '../../flows/risk-rule-sets.ts';
import { requestContext } from '../request-context.ts';
import { Currency, NoParams, ObjectId, strictObject } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome } from './common.ts';

const Value = Type.Integer({ minimum: 0, maximum: 99_999_999_999 });
const CreateBody = strictObject({
  subject: Type.Union([Type.Literal('merchant'), Type.Literal('customer'), Type.Literal('card'), Type.Literal('device'), Type.Literal('client_address')]),
  kind: Type.Union([Type.Literal('amount_min'), Type.Literal('amount_max'), Type.Literal('amount_per_day'), Type.Literal('count_per_hour'), Type.Literal('count_per_day')]),
  value: Value,
  currency: Type.Optional(Currency),
});
const UpdateBody = strictObject({ value: Value });
const IdParams = strictObject({ id: ObjectId });
const SettingsBody = strictObject({
  time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  merchant_category: Type.Optional(Type.String({ maxLength: 4 })),
  step_up_above_usd: Type.Optional(Type.Union([Type.Number(), Type.Literal('')])),
});
const HistoryLimit = Type.Integer({ minimum: 1, maximum: historyLimitMax });
const DecisionsQuery = strictObject({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })), charge: Type.Optional(ObjectId), payment_intent: Type.Optional(ObjectId),
});
const ReplayBody = strictObject({ limit: Type.Optional(HistoryLimit) });
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
  app.post('/v1/risk/limits', { config, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    return sendOutcome(reply, await answerInChange(request, (respond) => createLimit(services, ctx, request.body as LimitParams, respond), (limit: PaymentLimitRow) => limitObject(limit)));
  });
  app.get('/v1/risk/limits', { config, schema: { querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, listObject('/v1/risk/limits', (await listLimits(services, requestContext(request))).map(limitObject), false)));
  app.get('/v1/risk/limits/:id', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, limitObject(await findLimit(services.db, requestContext(request), (request.params as { id: string }).id))));
  app.post('/v1/risk/limits/:id', { config, schema: { params: IdParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    const value = (request.body as { value: number }).value;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateLimit(services, ctx, id, value, respond), (limit: PaymentLimitRow) => limitObject(limit)));
  });
  app.delete('/v1/risk/limits/:id', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) => {
    const deleted = await deleteLimit(services, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, { id: deleted.id, object: 'payment_limit', deleted: true });
  });
  // Rule sets: each change is a new version; the current one is the latest.
  app.post('/v1/risk/rule_sets', { config, schema: { body: strictObject({ rules: RuleSetBody }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const rules = (request.body as { rules: RuleParams[] }).rules;
    return sendOutcome(reply, await answerInChange(request, (respond) => createRuleSet(services, ctx, rules, respond), (ruleSet: RiskRuleSetRow) => ruleSetObject(ruleSet)));
  });
  app.get('/v1/risk/rule_sets', { config, schema: { querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, listObject('/v1/risk/rule_sets', (await listRuleSets(services, requestContext(request))).map(ruleSetObject), false)));
  app.get('/v1/risk/rule_sets/current', { config, schema: { querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, ruleSetObject(await currentRuleSet(services, requestContext(request)))));
  app.post('/v1/risk/rules/test', { config, schema: { body: TestRuleBody } }, async (request, reply) => {
    const body = request.body as { rule: string; attributes?: Record<string, unknown> };
    return sendObject(reply, testRule(body.rule, body.attributes ?? {}));
  });
  // What a proposed rule set would have decided over stored decisions.
  app.post('/v1/risk/rule_sets/backtest', {
    config, schema: { body: strictObject({ rules: RuleSetBody, limit: Type.Optional(HistoryLimit), since: Type.Optional(Type.Integer({ minimum: 0 })) }) },
  }, async (request, reply) => sendObject(reply, await backtestRuleSet(services, requestContext(request), request.body as BacktestParams)));
  app.get('/v1/risk/settings', { config, schema: { querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, { object: 'risk_settings', ...(await riskSettingsOf(services.db, requestContext(request))) }));
  app.post('/v1/risk/settings', { config, schema: { body: SettingsBody } }, async (request, reply) =>
    sendOutcome(reply, await answerInChange(request, (respond) => updateRiskSettings(services, requestContext(request), request.body as { time_zone?: string; merchant_category?: string; step_up_above_usd?: number | '' }, respond),
      (settings: RiskSettings) => ({ object: 'risk_settings', ...settings }))));
  // Stored decisions, with everything they were made from.
  app.get('/v1/risk/decisions', { config, schema: { querystring: DecisionsQuery } }, async (request, reply) => {
    const query = request.query as { limit?: number; charge?: string; payment_intent?: string };
    const rows = await listDecisions(services, requestContext(request), { ...query, limit: query.limit ?? 10 });
    return sendObject(reply, listObject('/v1/risk/decisions', rows.map(decisionObject), false));
  });
  app.get('/v1/risk/decisions/:id', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, decisionObject(await findDecision(services, requestContext(request), (request.params as { id: string }).id))));
  app.post('/v1/risk/decisions/replay', { config, schema: { body: ReplayBody } }, async (request, reply) =>
    sendObject(reply, await replayDecisions(services, requestContext(request), (request.body as { limit?: number }).limit ?? 1_000)));
}
