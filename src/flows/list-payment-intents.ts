import type { PaymentIntentRow } from '../store/database.ts';
import type { Services } from './context.ts';
import { listPage, type ListParams, type Page } from './list-page.ts';
import type { Scope } from './payment-intent-records.ts';

export type { CreatedFilter, ListParams, Page } from './list-page.ts';

/**
 * A page of PaymentIntents, newest first, as Stripe lists them; paging, `created` and cursors are those of every
 * list (`list-page.ts`).
 */
export async function listPaymentIntents(services: Services, scope: Scope, params: ListParams): Promise<Page<PaymentIntentRow>> {
  const rows = services.db.selectFrom('payment_intents').selectAll();
  return listPage(services.db, scope, { table: 'payment_intents', kind: 'payment_intent', rows }, params);
}
