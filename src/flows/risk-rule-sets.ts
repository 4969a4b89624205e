import { CofferError, resourceMissing } from '../domain/errors.ts';
import { newId } from '../platform/random.ts';
import {
  compileRule, compileRuleSet, evaluate, ruleAttributes, isRuleAttributeName,
  type RuleDefinition, type RuleError, type RuleInput, type RuleMode,
} from '../risk/rules/index.ts';
import type { RiskRuleSetRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface RuleParams {
  id: string;
  text: string;
  mode?: RuleMode;
}

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

function where(error: Pick<RuleError, 'position'>): string {
  return `line ${error.position.line}, column ${error.position.column}`;
}

/** Compiles a proposed set; the first problem becomes the error (naming the rule, the field and the place), with the rest listed. */
export function checkRuleSet(rules: readonly RuleParams[]): RuleDefinition[] {
  const definitions = rules.map((rule) => ({ id: rule.id, text: rule.text, mode: rule.mode ?? 'active' }));
  const compiled = compileRuleSet(definitions);
  if (compiled.ok) return definitions;
  const [first, ...rest] = compiled.errors;
  if (first === undefined) throw new CofferError('parameter_invalid', 'The rule set is not valid.', { param: 'rules' });
  const describe = (error: typeof first) => `rule ${error.ruleId || error.index} (${error.field}${error.field === 'text' ? `, ${where(error)}` : ''}): ${error.message}`;
  throw new CofferError(
    'parameter_invalid',
    [describe(first), ...rest.slice(0, 9).map(describe)].join('; '),
    { param: `rules[${first.index}][${first.field}]` },
  );
}

/** In the caller's transaction: a new version of the merchant's rule set (a staff approval creates it with its decision). */
export async function createRuleSetIn(tx: Tx, ctx: RequestContext, rules: readonly RuleParams[], now: Date): Promise<RiskRuleSetRow> {
  const definitions = checkRuleSet(rules);
  const scope = scopeOf(ctx);
  const latest = await tx.selectFrom('risk_rule_sets').select('version').where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).orderBy('version', 'desc').limit(1).forUpdate().executeTakeFirst();
  const row = await tx.insertInto('risk_rule_sets').values({
    id: newId('rset'), merchant_id: scope.merchantId, livemode: scope.livemode, version: (latest?.version ?? 0) + 1,
    rules: JSON.stringify(definitions), created_at: now, created_by: ctx.staffUserId ?? ctx.actor.apiKeyId,
  }).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), scope,
    { action: 'risk_rule_set.create', objectType: 'risk_rule_set', objectId: row.id, details: { version: row.version, rules: definitions } }, [], now);
  return row;
}

export async function createRuleSet(services: Services, ctx: RequestContext, rules: readonly RuleParams[], respond?: Respond<RiskRuleSetRow>): Promise<RiskRuleSetRow> {
  const now = new Date(services.clock.nowMs());
  try {
    return await inTransaction(services.db, async (tx) => {
      const created = await createRuleSetIn(tx, ctx, rules, now);
      await respond?.(tx, created);
      return created;
    });
  } catch (error) {
    if ((error as { code?: unknown }).code === '23505') throw new CofferError('lock_timeout', 'Another change to the rule set is being made. Try again in a moment.');
    throw error;
  }
}

export async function listRuleSets(services: Services, ctx: RequestContext): Promise<RiskRuleSetRow[]> {
  const scope = scopeOf(ctx);
  return services.db.selectFrom('risk_rule_sets').selectAll().where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).orderBy('version', 'desc').execute();
}

export async function currentRuleSet(services: Services, ctx: RequestContext): Promise<RiskRuleSetRow> {
  const [latest] = await listRuleSets(services, ctx);
  if (latest === undefined) throw resourceMissing('risk_rule_set', 'current', 'id');
  return latest;
}

/** Form bodies carry every value as text: attributes are read as the catalogue's types. */
function typedAttributes(raw: Record<string, unknown>): RuleInput {
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!isRuleAttributeName(name)) throw new CofferError('parameter_invalid', `Unknown attribute ${name}.`, { param: `attributes[${name}]` });
    const type = ruleAttributes[name].type;
    if (typeof value !== 'string') {
      input[name] = value;
    } else if (type === 'number') {
      const number = Number(value);
      if (value.trim() === '' || !Number.isFinite(number)) throw new CofferError('parameter_invalid', `Attribute ${name} is a number, got "${value}".`, { param: `attributes[${name}]` });
      input[name] = number;
    } else if (type === 'boolean') {
      if (value !== 'true' && value !== 'false') throw new CofferError('parameter_invalid', `Attribute ${name} is true or false, got "${value}".`, { param: `attributes[${name}]` });
      input[name] = value === 'true';
    } else {
      input[name] = value;
    }
  }
  return input as RuleInput;
}

/** "Test this rule": what it would decide for these attributes, and which it lacked. */
export function testRule(text: string, attributes: Record<string, unknown>): Record<string, unknown> {
  const compiled = compileRule(text);
  if (!compiled.ok) {
    const first = compiled.errors[0];
    throw new CofferError('parameter_invalid', first === undefined ? 'The rule is not valid.' : `${where(first)}: ${first.message}`, { param: 'rule' });
  }
  const result = evaluate(compiled.rule, typedAttributes(attributes));
  return { object: 'risk_rule_test', rule: text, action: compiled.rule.action, fired: result.fired, truth: result.truth, missing: result.missing };
}
