import type { PaymentIntentRow } from '../store/database.ts';
import type { Services } from './context.ts';
import { listPage, type ListParams, type Page } from './list-page.ts';
import type { Scope } from './payment-intent-records.ts';

export type { CreatedFilter, ListParams, Page } from './list-page.ts';

/**
 * A page of PaymentIntents, newest first, as Stripe lists them, all of them or one customer's; paging, `created`
 * and cursors are those of every list (`list-page.ts`).
 */
export async function listPaymentIntents(services: Services, scope: Scope, params: ListParams & { customer?: string | undefined }): Promise<Page<PaymentIntentRow>> {
  let rows = services.db.selectFrom('payment_intents').selectAll();
  // Another merchant's customer, or an unknown one, has no PaymentIntents here: the list is empty, as at Stripe.
  if (params.customer !== undefined) rows = rows.where('customer_id', '=', params.customer);
  return listPage(services.db, scope, { table: 'payment_intents', kind: 'payment_intent', rows }, params);
}
