import { resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import type { ChargeRow } from '../store/database.ts';
import type { RequestContext, Respond, Services } from './context.ts';
import { checkMetadataSize, mergeMetadata, type ShippingParams } from './payment-intent-params.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface UpdateChargeParams {
  description?: string | '';
  metadata?: Record<string, string> | '';
  receipt_email?: string | '';
  shipping?: ShippingParams | '';
  /** The merchant's report: `fraudulent` or `safe`; `''` withdraws it. */
  fraud_details?: { user_report: 'fraudulent' | 'safe' | '' };
}

/**
 * Updates what a merchant may change on a charge, as at Stripe: its description, metadata, receipt email and
 * shipping (money, status and card are the acquirer's record and never change here). `charge.updated` carries what
 * changed. `""` unsets a field.
 *
 * `fraud_details[user_report]` is the merchant's word on the payment: it is shown on the charge, audited, and kept as
 * a risk label (source `report`) that the risk history and the training export read, as a review's outcome is. A
 * report changes no money: refunding a fraudulent payment is a refund.
 */
export async function updateCharge(services: Services, ctx: RequestContext, id: string, params: UpdateChargeParams, respond?: Respond<ChargeRow>): Promise<ChargeRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const charge = await tx.selectFrom('charges').selectAll().where('id', '=', id)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).forUpdate().executeTakeFirst();
    if (charge === undefined) throw resourceMissing('charge', id, 'charge');
    const metadata = mergeMetadata(charge.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const after = await tx.updateTable('charges').set({
      metadata: JSON.stringify(metadata),
      description: params.description === undefined ? charge.description : params.description || null,
      receipt_email: params.receipt_email === undefined ? charge.receipt_email : params.receipt_email || null,
      ...(params.shipping === undefined ? {} : { shipping: JSON.stringify(params.shipping || null) }),
      ...(params.fraud_details === undefined ? {} : { fraud_user_report: params.fraud_details.user_report || null }),
      updated_at: now,
    }).where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    const report = params.fraud_details?.user_report;
    if (report === '') await tx.deleteFrom('risk_labels').where('charge_id', '=', charge.id).where('source', '=', 'report').execute();
    else if (report !== undefined) {
      await tx.insertInto('risk_labels').values({ charge_id: charge.id, source: 'report', merchant_id: charge.merchant_id, livemode: charge.livemode, fraud: report === 'fraudulent', labeled_at: now })
        .onConflict((oc) => oc.columns(['charge_id', 'source']).doUpdateSet({ fraud: report === 'fraudulent', labeled_at: now })).execute();
    }
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'charge.update', objectType: 'charge', objectId: charge.id, details: { fields: Object.keys(params), ...(report === undefined ? {} : { user_report: report || null }) } },
      [{ type: 'charge.updated', charge: { before: charge, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}
