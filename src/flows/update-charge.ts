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
}

/**
 * Updates what a merchant may change on a charge, as at Stripe: its description, metadata, receipt email and
 * shipping (money, status and card are the acquirer's record and never change here). `charge.updated` carries what
 * changed. `""` unsets a field.
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
      updated_at: now,
    }).where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'charge.update', objectType: 'charge', objectId: charge.id, details: { fields: Object.keys(params) } },
      [{ type: 'charge.updated', charge: { before: charge, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}
