import { sql } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { unixTime } from '../objects/common.ts';
import { defaultRuleSetId, replayDecision, type DecisionInputs, type RiskAction } from '../risk/engine.ts';
import { compileRuleSet, decide, type RuleInput } from '../risk/rules/index.ts';
import type { RiskDecisionRow } from '../store/database.ts';
import type { RequestContext, Services } from './context.ts';
import { decisionResult } from './risk-decision.ts';
import { checkRuleSet, type RuleParams } from './risk-rule-sets.ts';

/**
 * What the risk engine decided before: stored decisions as objects, a replay that proves they are reproducible,
 * and a backtest that tells an analyst what a proposed rule set would have decided over them.
 */
function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

export const historyLimitMax = 10_000;

export function decisionObject(row: RiskDecisionRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'risk_decision',
    charge: row.charge_id,
    payment_intent: row.payment_intent_id,
    created: unixTime(row.created_at),
    livemode: row.livemode,
    action: row.action,
    risk_score: row.risk_score,
    risk_level: row.risk_level,
    rule: row.rule_id,
    rule_set: row.rule_set_id,
    model_version: row.model_version,
    degraded: row.degraded,
    inputs: row.inputs,
    result: row.result,
    elapsed_us: row.elapsed_us,
  };
}

export async function findDecision(services: Services, ctx: RequestContext, id: string): Promise<RiskDecisionRow> {
  const scope = scopeOf(ctx);
  const row = await services.db.selectFrom('risk_decisions').selectAll().where('id', '=', id)
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).executeTakeFirst();
  if (row === undefined) throw resourceMissing('risk_decision', id, 'id');
  return row;
}

/** Stored decisions, newest first, optionally of one charge or PaymentIntent. */
export async function listDecisions(
  services: Services, ctx: RequestContext, params: { limit: number; charge?: string; payment_intent?: string },
): Promise<RiskDecisionRow[]> {
  const scope = scopeOf(ctx);
  let query = services.db.selectFrom('risk_decisions').selectAll().where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode);
  if (params.charge !== undefined) query = query.where('charge_id', '=', params.charge);
  if (params.payment_intent !== undefined) query = query.where('payment_intent_id', '=', params.payment_intent);
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(params.limit).execute();
}

/** JSON with object keys sorted at every level (the database keeps jsonb keys in its own order). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => (inner !== null && typeof inner === 'object' && !Array.isArray(inner)
    ? Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : inner));
}

export interface ReplayReport {
  object: 'risk_replay';
  replayed: number;
  identical: number;
  /** Decisions whose replay differs: each with what was stored and what replaying gave. */
  different: Array<{ decision: string; stored: unknown; replayed: unknown }>;
  /** Decisions made with another model version than the one loaded now (they cannot be replayed here). */
  skipped: number;
}

/** Replays the newest `limit` stored decisions with the rule set and model each one used. */
export async function replayDecisions(services: Services, ctx: RequestContext, limit: number): Promise<ReplayReport> {
  const rows = await listDecisions(services, ctx, { limit });
  const ruleSetIds = [...new Set(rows.flatMap((row) => (row.rule_set_id === null || row.rule_set_id === defaultRuleSetId ? [] : [row.rule_set_id])))];
  const ruleSets = ruleSetIds.length === 0 ? [] : await services.db.selectFrom('risk_rule_sets').select(['id', 'rules']).where('id', 'in', ruleSetIds).execute();
  const byId = new Map(ruleSets.map((row) => [row.id, row]));
  const report: ReplayReport = { object: 'risk_replay', replayed: 0, identical: 0, different: [], skipped: 0 };
  for (const row of rows) {
    if (row.model_version !== null && row.model_version !== services.risk.modelVersion) {
      report.skipped += 1;
      continue;
    }
    const stored = row.rule_set_id === null || row.rule_set_id === defaultRuleSetId ? null : byId.get(row.rule_set_id);
    if (stored === undefined) {
      // Defaults of another version, or a set that no longer exists: nothing to replay against.
      report.skipped += 1;
      continue;
    }
    const policy = services.risk.policyFor(stored, false);
    const replayed = decisionResult(replayDecision(policy, row.inputs as unknown as DecisionInputs));
    report.replayed += 1;
    if (canonicalJson(replayed) === canonicalJson(row.result)) report.identical += 1;
    else report.different.push({ decision: row.id, stored: row.result, replayed });
  }
  return report;
}

export interface BacktestParams {
  rules: RuleParams[];
  limit?: number;
  /** Unix seconds: only decisions made at or after this time. */
  since?: number;
}

/**
 * What a proposed rule set would have decided over stored decisions: each payment's attributes as stored, with
 * the score and level it had then. Counts by action, the changes from what was decided, each rule's matches,
 * and against the labels learned since (reviews, disputes): frauds it would have stopped and legitimate payments
 * it would have blocked.
 */
export async function backtestRuleSet(services: Services, ctx: RequestContext, params: BacktestParams): Promise<Record<string, unknown>> {
  const definitions = checkRuleSet(params.rules);
  const compiled = compileRuleSet(definitions);
  if (!compiled.ok) throw new CofferError('parameter_invalid', 'The rule set is not valid.', { param: 'rules' });
  const limit = params.limit ?? 1_000;
  const scope = scopeOf(ctx);
  let query = services.db.selectFrom('risk_decisions')
    .leftJoin('risk_labels', 'risk_labels.charge_id', 'risk_decisions.charge_id')
    .select(['risk_decisions.id', 'risk_decisions.charge_id', 'risk_decisions.action', 'risk_decisions.risk_score', 'risk_decisions.risk_level', 'risk_decisions.inputs'])
    .select(sql<boolean | null>`bool_or(risk_labels.fraud)`.as('fraud'))
    .where('risk_decisions.merchant_id', '=', scope.merchantId).where('risk_decisions.livemode', '=', scope.livemode)
    .groupBy(['risk_decisions.id', 'risk_decisions.charge_id', 'risk_decisions.action', 'risk_decisions.risk_score', 'risk_decisions.risk_level', 'risk_decisions.inputs', 'risk_decisions.created_at']);
  if (params.since !== undefined) query = query.where('risk_decisions.created_at', '>=', new Date(params.since * 1000));
  const rows = await query.orderBy('risk_decisions.created_at', 'desc').limit(limit).execute();
  const actions: Record<RiskAction, number> = { allow: 0, request_step_up: 0, review: 0, block: 0 };
  const transitions: Record<string, number> = {};
  const perRule = new Map(definitions.map((rule) => [rule.id, { matched: 0, decided: 0, shadow_matched: 0 }]));
  const labelled = { fraud: 0, fraud_stopped: 0, legitimate: 0, legitimate_blocked: 0, legitimate_reviewed: 0 };
  const examples: Array<Record<string, unknown>> = [];
  for (const row of rows) {
    const inputs = row.inputs as unknown as DecisionInputs;
    const attributes: RuleInput = { ...inputs.attributes, risk_score: row.risk_score, risk_level: row.risk_level === 'not_assessed' ? null : row.risk_level };
    const result = decide(compiled.ruleSet, attributes);
    const action = result.action ?? 'allow';
    actions[action] += 1;
    for (const id of result.matched) (perRule.get(id) as { matched: number }).matched += 1;
    for (const id of result.shadowMatches) (perRule.get(id) as { shadow_matched: number }).shadow_matched += 1;
    if (result.rule !== null) (perRule.get(result.rule) as { decided: number }).decided += 1;
    if (action !== row.action) {
      const key = `${row.action}->${action}`;
      transitions[key] = (transitions[key] ?? 0) + 1;
      if (examples.length < 20) examples.push({ decision: row.id, charge: row.charge_id, was: row.action, would_be: action, rule: result.rule });
    }
    const fraud = row.fraud as unknown;
    if (fraud === true || fraud === 'true' || fraud === 1) {
      labelled.fraud += 1;
      if (action === 'block' || action === 'review') labelled.fraud_stopped += 1;
    } else if (fraud === false || fraud === 'false' || fraud === 0) {
      labelled.legitimate += 1;
      if (action === 'block') labelled.legitimate_blocked += 1;
      if (action === 'review') labelled.legitimate_reviewed += 1;
    }
  }
  return {
    object: 'risk_backtest',
    decisions: rows.length,
    actions,
    changed: Object.values(transitions).reduce((sum, n) => sum + n, 0),
    transitions,
    rules: Object.fromEntries(perRule),
    labelled,
    examples,
  };
}
