import type { Insertable } from 'kysely';
import type { Decline } from '../connectors/connector.ts';
import { newId } from '../platform/random.ts';
import { decideRisk, storedInputs, type DecisionInputs, type DegradedReason, type RiskDecision } from '../risk/engine.ts';
import { ipCountry } from '../risk/ip-country.ts';
import { liveSparkovFeatures, type CardHistory } from '../risk/live-features.ts';
import type { RiskEngine } from '../risk/risk-engine.ts';
import { velocityMeasures, velocityPeriods, velocitySubjects, type RuleInput } from '../risk/rules/index.ts';
import { amountInUsd } from '../risk/usd-rates.ts';
import { readVelocityAll, type KeyVelocity, type VelocityDimension, type VelocityKeys } from '../risk/velocity.ts';
import { cardFactsOf, type ChargeRisk, type ChargeRow, type PaymentIntentRow, type PaymentMethodRow, type RiskDecisionsTable } from '../store/database.ts';
import type { Services } from './context.ts';
import type { Scope } from './payment-intent-records.ts';

/** A decision for one attempt: what the charge shows, and the row that keeps it with its inputs. */
export interface AttemptRisk {
  decision: RiskDecision;
  summary: ChargeRisk;
  row: Insertable<RiskDecisionsTable>;
}

export interface AttemptFacts {
  scope: Scope;
  intent: PaymentIntentRow;
  paymentMethod: PaymentMethodRow;
  charge: ChargeRow;
  /** The shipping the confirmation leaves on the PaymentIntent. */
  shipping: Record<string, unknown> | null;
  velocityKeys: VelocityKeys;
  now: Date;
  /** The merchant's policy, read with the PaymentIntent and its limits (`readConfirmationInputs`). */
  policy: MerchantPolicyRow;
}

export interface MerchantPolicyRow {
  time_zone: string;
  category: string | null;
  rule_set_id: string | null;
  rules: Array<{ id: string; text: string; mode: 'active' | 'shadow' }> | null;
}

/** Test cards that stand for a risk level, as Radar's do (bin and last four digits). */
const testCardLevels: ReadonlyMap<string, 'elevated' | 'highest'> = new Map([
  ['400000/9235', 'elevated'], ['400000/4954', 'highest'], ['410000/0019', 'highest'],
]);

const clockFormats = new Map<string, Intl.DateTimeFormat>();
const weekdays = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** The last answer per time zone: every payment of a minute asks the same question. */
const lastClocks = new Map<string, { minute: number; clock: { hour: number; dayOfWeek: number } }>();

/** Hour (with minutes as a fraction) and day of the week (0 = Sunday) in a time zone. */
export function localClock(at: Date, timeZone: string): { hour: number; dayOfWeek: number } {
  const minute = Math.floor(at.getTime() / 60_000);
  const last = lastClocks.get(timeZone);
  if (last !== undefined && last.minute === minute) return { ...last.clock };
  const clock = formatLocalClock(at, timeZone);
  if (lastClocks.size >= 1_000 && last === undefined) lastClocks.clear();
  lastClocks.set(timeZone, { minute, clock });
  return { ...clock };
}

function formatLocalClock(at: Date, timeZone: string): { hour: number; dayOfWeek: number } {
  let format = clockFormats.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hour: 'numeric', minute: 'numeric', weekday: 'short', hourCycle: 'h23' });
    clockFormats.set(timeZone, format);
  }
  let hour = 0;
  let minute = 0;
  let dayOfWeek = 0;
  for (const part of format.formatToParts(at)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
    else if (part.type === 'weekday') dayOfWeek = weekdays.indexOf(part.value);
  }
  return { hour: hour + minute / 60, dayOfWeek };
}

function countryOf(details: Record<string, unknown> | null | undefined): string | null {
  const address = details?.address as { country?: unknown } | null | undefined;
  return typeof address?.country === 'string' && address.country !== '' ? address.country.toUpperCase() : null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The counters, or the reason the decision goes on without them. */
async function velocityWithin(
  services: Services, engine: RiskEngine, facts: AttemptFacts,
): Promise<Partial<Record<VelocityDimension, KeyVelocity>> | DegradedReason> {
  const budget = engine.options.velocityBudgetMs;
  const fault = facts.scope.livemode ? null : engine.options.fault;
  let timer: NodeJS.Timeout | undefined;
  const overBudget = new Promise<'velocity_over_budget'>((resolve) => {
    timer = setTimeout(() => resolve('velocity_over_budget'), budget);
  });
  const read = (async () => {
    if (fault === 'velocity_fail') throw new Error('the velocity counters failed (COFFER_RISK_FAULT=velocity_fail)');
    if (fault === 'velocity_slow') await sleep(budget + 100);
    return readVelocityAll(services.db, facts.scope, facts.velocityKeys, facts.charge.currency, facts.now);
  })();
  try {
    return await Promise.race([read, overBudget]);
  } catch (error) {
    services.logger.warn({ err: error, charge: facts.charge.id }, 'risk: velocity counters unavailable; deciding without them');
    return 'velocity_failed';
  } finally {
    clearTimeout(timer);
    read.catch(() => undefined);
  }
}

/** The velocity attributes (`:card_payments_24h:` …) of the keys the payment has. */
function velocityAttributes(found: Partial<Record<VelocityDimension, KeyVelocity>>): Record<string, number> {
  const attributes: Record<string, number> = {};
  for (const [subject, dimension] of Object.entries(velocitySubjects)) {
    const entry = found[dimension];
    if (entry === undefined) continue;
    for (const [period, window] of Object.entries(velocityPeriods)) {
      const counters = entry.counters[window];
      for (const measure of velocityMeasures) {
        const value = measure === 'payments' ? counters.total.count
          : measure === 'declined_payments' ? counters.declined.count
            : measure === 'blocked_payments' ? counters.blocked.count : Number(counters.total.amount);
        attributes[`${subject}_${measure}_${period}`] = value;
      }
    }
  }
  return attributes;
}

async function gatherInputs(services: Services, engine: RiskEngine, facts: AttemptFacts): Promise<{ inputs: DecisionInputs; policyRow: MerchantPolicyRow }> {
  const { scope, intent, paymentMethod, charge, now } = facts;
  const policyRow = facts.policy;
  const velocity = await velocityWithin(services, engine, facts);
  const degradedReasons: DegradedReason[] = typeof velocity === 'string' ? [velocity] : [];
  const counters = typeof velocity === 'string' ? {} : velocity;
  const card = paymentMethod.type === 'card' ? cardFactsOf(paymentMethod) : undefined;
  const email = charge.risk_facts?.email ?? null;
  const clientAddress = charge.risk_facts?.client_address ?? null;
  const rates = engine.options.usdRates;
  const amountUsd = amountInUsd(rates, charge.amount, charge.currency);
  const clock = localClock(now, policyRow.time_zone);
  const attributes: Record<string, unknown> = {
    amount: Number(charge.amount),
    amount_usd: amountUsd ?? null,
    currency: charge.currency,
    livemode: scope.livemode,
    merchant_id: scope.merchantId,
    merchant_category: policyRow.category,
    customer_id: intent.customer_id,
    email,
    email_domain: email?.includes('@') === true ? email.slice(email.lastIndexOf('@') + 1) : null,
    card_bin: card?.bin ?? null,
    card_brand: card?.brand ?? null,
    card_country: card?.country ?? null,
    card_fingerprint: card?.fingerprint ?? null,
    ip_address: clientAddress,
    ip_country: ipCountry(clientAddress) ?? null,
    device_id: charge.risk_facts?.device ?? null,
    billing_country: countryOf(paymentMethod.billing_details),
    shipping_country: countryOf(facts.shipping),
    hour_of_day: Math.floor(clock.hour),
    day_of_week: clock.dayOfWeek === 0 ? 7 : clock.dayOfWeek,
    ...velocityAttributes(counters),
  };
  // Null attributes are left out: missing, and smaller to store.
  for (const [name, value] of Object.entries(attributes)) if (value === null || value === undefined) delete attributes[name];
  let features: number[] | null = null;
  let imputed: string[] = [];
  const encoding = engine.encoding;
  if (encoding !== null && amountUsd === undefined) degradedReasons.push('no_usd_rate');
  if (encoding !== null && amountUsd !== undefined) {
    const cardVelocity = counters.card;
    const usd = (minor: bigint) => amountInUsd(rates, minor, charge.currency) ?? 0;
    // Test mode's cards are the public test numbers every integration shares: their history describes test runs,
    // not a cardholder, so the model does not see it there (velocity rules still do).
    const history: CardHistory | null = card === undefined || !scope.livemode ? null : {
      // Counts of payments in this currency, as the amounts are (a mean of amounts needs the same payments).
      count24h: cardVelocity?.sameCurrencyCount.h24 ?? 0,
      amountUsd24h: usd(cardVelocity?.counters.h24.total.amount ?? 0n),
      count7d: cardVelocity?.sameCurrencyCount.d7 ?? 0,
      amountUsd7d: usd(cardVelocity?.counters.d7.total.amount ?? 0n),
      lastAtMs: cardVelocity?.lastAt?.getTime() ?? null,
    };
    const live = liveSparkovFeatures({
      amountUsd, merchantCategory: policyRow.category, localHour: clock.hour, localDayOfWeek: clock.dayOfWeek, nowMs: now.getTime(), card: history,
    }, encoding);
    // Six decimals are plenty for the trees, and keep long digit runs (which look like card numbers to the
    // vault's leak scanner) out of what is stored.
    features = live.features.map((value) => Math.round(value * 1e6) / 1e6);
    imputed = live.imputed;
    // Counters that were not read make the card's history unknown, not zero: the model is left out.
    if (typeof velocity === 'string' && card !== undefined) features = null;
  }
  const forcedLevel = !scope.livemode && card?.bin !== undefined ? (testCardLevels.get(`${card.bin}/${card.last4}`) ?? null) : null;
  return { inputs: { attributes: attributes as RuleInput, features, imputed, forcedLevel, degradedReasons }, policyRow };
}

/**
 * A blocked attempt, recorded as declined without ever reaching the provider: by the confirmation, or by the
 * recovery jobs if the process stopped before it could record it.
 */
export function riskBlockDecline(charge: Pick<ChargeRow, 'provider'>): Decline {
  const card = charge.provider === 'card';
  return {
    status: 'declined',
    providerReference: null,
    code: card ? 'card_declined' : 'payment_method_provider_decline',
    declineCode: 'fraudulent',
    message: card ? 'Your card was declined.' : 'The payment was declined. Try another payment method.',
    param: null,
    adviceCode: 'do_not_try_again',
    networkStatus: 'not_sent_to_network',
    blocked: true,
  };
}

/** Whether the attempt is authorized only, to be captured when a person approves it. */
export function heldForReview(risk: ChargeRisk | null): boolean {
  return risk?.action === 'review' || risk?.step_up === 'held_for_review';
}

function summaryOf(id: string, decision: RiskDecision): ChargeRisk {
  return {
    decision: id, action: decision.action, risk_score: decision.riskScore, risk_level: decision.riskLevel, rule: decision.rule,
    reasons: decision.reasons, degraded: decision.degraded,
  };
}

/**
 * Decides an attempt before any provider call. Never throws: whatever fails is left out of the decision and
 * named in its degraded reasons, and if even the inputs cannot be gathered, Coffer's default rules decide on the
 * payment's own attributes.
 */
export async function decideAttempt(services: Services, facts: AttemptFacts): Promise<AttemptRisk> {
  const engine = services.risk;
  const started = process.hrtime.bigint();
  let inputs: DecisionInputs;
  let policyRow: MerchantPolicyRow | null = null;
  try {
    ({ inputs, policyRow } = await gatherInputs(services, engine, facts));
  } catch (error) {
    services.logger.warn({ err: error, charge: facts.charge.id }, 'risk: inputs unavailable; deciding by the default rules');
    inputs = {
      attributes: { amount: Number(facts.charge.amount), currency: facts.charge.currency, livemode: facts.scope.livemode, merchant_id: facts.scope.merchantId },
      features: null, imputed: [], forcedLevel: null, degradedReasons: ['inputs_failed'],
    };
  }
  let policy = engine.policyFor(null, !facts.scope.livemode);
  let decision: RiskDecision;
  try {
    policy = engine.policyFor(policyRow === null || policyRow.rule_set_id === null || policyRow.rules === null ? null : { id: policyRow.rule_set_id, rules: policyRow.rules }, !facts.scope.livemode);
    decision = decideRisk(policy, inputs, { modelBudgetUs: engine.options.modelBudgetUs });
  } catch (error) {
    // A stored rule set that cannot be used (it should not happen: sets are checked when made) decides by the defaults.
    services.logger.error({ err: error, charge: facts.charge.id }, 'risk: the rule set failed; deciding by the default rules');
    policy = engine.policyFor(null, false);
    inputs = { ...inputs, degradedReasons: [...inputs.degradedReasons, 'inputs_failed'] };
    decision = decideRisk(policy, inputs, { modelBudgetUs: engine.options.modelBudgetUs });
  }
  const id = newId('rdec');
  const stored = storedInputs(inputs, decision);
  const row: Insertable<RiskDecisionsTable> = {
    id,
    merchant_id: facts.scope.merchantId,
    livemode: facts.scope.livemode,
    charge_id: facts.charge.id,
    payment_intent_id: facts.intent.id,
    created_at: facts.now,
    action: decision.action,
    risk_score: decision.riskScore,
    risk_level: decision.riskLevel,
    rule_id: decision.rule,
    rule_set_id: policy.ruleSetId,
    model_version: decision.probability === null ? null : engine.modelVersion,
    degraded: decision.degraded,
    inputs: JSON.stringify(stored),
    result: JSON.stringify(decisionResult(decision)),
    elapsed_us: Number((process.hrtime.bigint() - started) / 1000n),
  };
  return { decision, summary: summaryOf(id, decision), row };
}

/** What a decision concluded, as stored; replays compare the same object. */
export function decisionResult(decision: RiskDecision): Record<string, unknown> {
  return {
    action: decision.action,
    risk_score: decision.riskScore,
    risk_level: decision.riskLevel,
    rule: decision.rule,
    matched: decision.matched,
    shadow_matches: decision.shadowMatches,
    probability: decision.probability,
    model_action: decision.modelAction,
    model_reasons: decision.modelReasons,
    reasons: decision.reasons,
    degraded_reasons: decision.degradedReasons,
  };
}
