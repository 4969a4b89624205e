import { CofferError, resourceMissing } from '../domain/errors.ts';
import { findCurrency } from '../domain/currency.ts';
import { limits as bounds } from '../limits.ts';
import { newId } from '../platform/random.ts';
import { isAmountKind, isTimeZone } from '../risk/limits.ts';
import type { LimitKind, LimitSubject, PaymentLimitRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface LimitParams {
  subject: LimitSubject;
  kind: LimitKind;
  value: number;
  currency?: string;
}

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

/** The currency rule: amount limits name one; count limits none. */
export function checkShape(kind: LimitKind, currency: string | undefined): string | null {
  if (isAmountKind(kind)) {
    if (currency === undefined) throw new CofferError('parameter_missing', `A ${kind} limit needs a currency: its value is an amount in that currency's minor unit.`, { param: 'currency' });
    if (findCurrency(currency) === undefined) throw new CofferError('currency_invalid', `Invalid currency: ${currency}.`, { param: 'currency' });
    return currency;
  }
  if (currency !== undefined) throw new CofferError('parameter_invalid', `A ${kind} limit counts payments, not an amount: it takes no currency.`, { param: 'currency' });
  return null;
}

async function countActive(tx: Tx, ctx: RequestContext): Promise<number> {
  const scope = scopeOf(ctx);
  const rows = await tx.selectFrom('payment_limits').select('id').where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('deleted_at', 'is', null).execute();
  return rows.length;
}

export async function createLimit(services: Services, ctx: RequestContext, params: LimitParams, respond?: Respond<PaymentLimitRow>): Promise<PaymentLimitRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const created = await createLimitIn(tx, ctx, params, now);
    await respond?.(tx, created);
    return created;
  });
}

/** In the caller's transaction (a staff approval creates the limit with its decision). */
export async function createLimitIn(tx: Tx, ctx: RequestContext, params: LimitParams, now: Date): Promise<PaymentLimitRow> {
  const currency = checkShape(params.kind, params.currency);
  const scope = scopeOf(ctx);
  if (await countActive(tx, ctx) >= bounds.paymentLimitsPerMerchantMax) {
    throw new CofferError('parameter_invalid', `A merchant can have at most ${bounds.paymentLimitsPerMerchantMax} payment limits per mode; delete one first.`);
  }
  const row: PaymentLimitRow = {
    id: newId('plim'), merchant_id: scope.merchantId, livemode: scope.livemode, seq: 0n, subject: params.subject, kind: params.kind,
    currency, value: BigInt(params.value), created_at: now, updated_at: now, deleted_at: null,
  };
  const { seq: _seq, ...insert } = row;
  const created = await tx.insertInto('payment_limits').values(insert).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), scope,
    { action: 'payment_limit.create', objectType: 'payment_limit', objectId: row.id, details: { subject: row.subject, kind: row.kind, value: String(row.value), currency } },
    [], now);
  return created;
}

export async function findLimit(reader: Services['db'] | Tx, ctx: RequestContext, id: string): Promise<PaymentLimitRow> {
  const scope = scopeOf(ctx);
  const row = await reader.selectFrom('payment_limits').selectAll().where('id', '=', id).where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('deleted_at', 'is', null).executeTakeFirst();
  if (row === undefined) throw resourceMissing('payment_limit', id, 'id');
  return row;
}

export async function listLimits(services: Services, ctx: RequestContext): Promise<PaymentLimitRow[]> {
  const scope = scopeOf(ctx);
  return services.db.selectFrom('payment_limits').selectAll().where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('deleted_at', 'is', null).orderBy('seq').execute();
}

/** A new value takes effect for the next payment; what the current window has counted stays counted. */
export async function updateLimit(services: Services, ctx: RequestContext, id: string, value: number, respond?: Respond<PaymentLimitRow>): Promise<PaymentLimitRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const updated = await updateLimitIn(tx, ctx, id, value, now);
    await respond?.(tx, updated);
    return updated;
  });
}

export async function updateLimitIn(tx: Tx, ctx: RequestContext, id: string, value: number, now: Date): Promise<PaymentLimitRow> {
  const before = await findLimit(tx, ctx, id);
  const after = await tx.updateTable('payment_limits').set({ value: BigInt(value), updated_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), scopeOf(ctx),
    { action: 'payment_limit.update', objectType: 'payment_limit', objectId: id, details: { from: String(before.value), to: String(value) } }, [], now);
  return after;
}

export async function deleteLimit(services: Services, ctx: RequestContext, id: string): Promise<PaymentLimitRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, (tx) => deleteLimitIn(tx, ctx, id, now));
}

export async function deleteLimitIn(tx: Tx, ctx: RequestContext, id: string, now: Date): Promise<PaymentLimitRow> {
  await findLimit(tx, ctx, id);
  const after = await tx.updateTable('payment_limits').set({ deleted_at: now, updated_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'payment_limit.delete', objectType: 'payment_limit', objectId: id }, [], now);
  return after;
}

/** Days are counted in the merchant's time zone (an IANA name such as `Asia/Shanghai`). */
export interface RiskSettings {
  time_zone: string;
  merchant_category: string | null;
  /** Hosted checkout payments at or above this many dollars need the shopper's step-up; null: never by amount. */
  step_up_above_usd: number | null;
}

/**
 * Updates the merchant's risk settings in the key's mode: the time zone days are counted in, its category code (a
 * model input), and the amount above which hosted checkout asks for the shopper's step-up.
 */
export async function updateRiskSettings(services: Services, ctx: RequestContext, params: { time_zone?: string; merchant_category?: string; step_up_above_usd?: number | '' }, respond?: Respond<RiskSettings>): Promise<RiskSettings> {
  const timeZone = params.time_zone;
  if (timeZone !== undefined && !isTimeZone(timeZone)) {
    throw new CofferError('parameter_invalid', `Unknown time zone "${timeZone}": use an IANA name such as Asia/Shanghai or UTC.`, { param: 'time_zone' });
  }
  const category = params.merchant_category;
  if (category !== undefined && category !== '' && !/^[0-9]{4}$/.test(category)) {
    throw new CofferError('parameter_invalid', `merchant_category is a four-digit merchant category code (ISO 18245), such as 5999; got "${category}".`, { param: 'merchant_category' });
  }
  const threshold = params.step_up_above_usd;
  if (threshold !== undefined && threshold !== '' && (!Number.isFinite(threshold) || threshold < 0 || threshold > 1e9 || Math.round(threshold * 100) !== threshold * 100)) {
    throw new CofferError('parameter_invalid', 'step_up_above_usd is an amount in US dollars from 0 to 1,000,000,000 with at most two decimals, or empty to turn it off.', { param: 'step_up_above_usd' });
  }
  const changes = {
    ...(timeZone === undefined ? {} : { time_zone: timeZone }),
    ...(category === undefined ? {} : { category: category === '' ? null : category }),
    ...(threshold === undefined ? {} : { step_up_above_usd: threshold === '' ? null : threshold.toFixed(2) }),
  };
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    if (Object.keys(changes).length > 0) {
      // This mode's settings only: a test key never changes how live payments are decided.
      await tx.insertInto('merchant_risk_settings').values({ merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, ...changes })
        .onConflict((conflict) => conflict.columns(['merchant_id', 'livemode']).doUpdateSet(changes)).execute();
      await recordChange(tx, requestTrail(ctx), scopeOf(ctx),
        { action: 'merchant.risk_settings.update', objectType: 'merchant', objectId: ctx.actor.merchantId, details: changes }, [], now);
    }
    // The settings as this change left them, read in its transaction.
    const settings = await riskSettingsOf(tx, ctx);
    await respond?.(tx, settings);
    return settings;
  });
}

export async function riskSettingsOf(reader: Services['db'] | Tx, ctx: RequestContext): Promise<RiskSettings> {
  const row = await reader.selectFrom('merchant_risk_settings').select(['time_zone', 'category', 'step_up_above_usd'])
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
  if (row === undefined) return { time_zone: 'UTC', merchant_category: null, step_up_above_usd: null };
  return { time_zone: row.time_zone, merchant_category: row.category, step_up_above_usd: row.step_up_above_usd === null ? null : Number(row.step_up_above_usd) };
}
