import { resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import type { CheckoutSessionRow, SupportCaseRow } from '../store/database.ts';
import { systemContext } from './checkout-sessions.ts';
import type { RequestContext, Services } from './context.ts';
import { listPage, type ListParams, type Page } from './list-page.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

/** "A problem with this payment?" from the checkout's result page: a case for the merchant, attached to the payment. */
export async function openSupportCase(
  services: Services, session: CheckoutSessionRow, params: { message: string; contact: string | null }, clientAddress: string,
): Promise<SupportCaseRow | undefined> {
  const now = new Date(services.clock.nowMs());
  const ctx = systemContext(session, 'checkout', true, clientAddress);
  return inTransaction(services.db, async (tx) => {
    // One page session may open a few cases, not a flood: counted under the session's lock, so that concurrent
    // posts cannot pass the cap together.
    await tx.selectFrom('checkout_sessions').select('id').where('id', '=', session.id).forUpdate().executeTakeFirstOrThrow();
    const { opened } = await tx.selectFrom('support_cases').select(({ fn }) => fn.countAll<string>().as('opened'))
      .where('checkout_session_id', '=', session.id).executeTakeFirstOrThrow();
    if (Number(opened) >= limits.supportCasesPerSessionMax) return undefined;
    const row = await tx.insertInto('support_cases').values({
      id: newId('sc'), merchant_id: session.merchant_id, livemode: session.livemode, created_at: now, checkout_session_id: session.id,
      payment_intent_id: session.payment_intent_id, contact: params.contact, message: params.message, status: 'open',
    }).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), { merchantId: session.merchant_id, livemode: session.livemode },
      { action: 'support_case.open', objectType: 'support_case', objectId: row.id, details: { payment_intent: session.payment_intent_id } }, [], now);
    return row;
  });
}

export function supportCaseObject(row: SupportCaseRow): Record<string, unknown> {
  return {
    id: row.id, object: 'support_case', checkout_session: row.checkout_session_id, payment_intent: row.payment_intent_id,
    contact: row.contact, message: row.message, status: row.status, created: Math.floor(row.created_at.getTime() / 1000), livemode: row.livemode,
  };
}

export async function listSupportCases(services: Services, ctx: RequestContext, params: ListParams & { payment_intent?: string }): Promise<Page<SupportCaseRow>> {
  let rows = services.db.selectFrom('support_cases').selectAll();
  if (params.payment_intent !== undefined) rows = rows.where('payment_intent_id', '=', params.payment_intent);
  return listPage(services.db, ctx.actor, { table: 'support_cases', kind: 'support_case', rows }, params);
}

export async function findSupportCase(services: Services, ctx: RequestContext, id: string): Promise<SupportCaseRow> {
  const row = await services.db.selectFrom('support_cases').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
  if (row === undefined) throw resourceMissing('support_case', id, 'id');
  return row;
}
