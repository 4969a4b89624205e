import { CofferError } from '../domain/errors.ts';
import type { PaymentIntentRow } from '../store/database.ts';
import type { Services } from './context.ts';
import type { Scope } from './payment-intent-records.ts';

export interface CreatedFilter {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

export interface ListParams {
  limit: number;
  starting_after?: string;
  ending_before?: string;
  created?: number | CreatedFilter;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

function cursorMissing(param: string, id: string): CofferError {
  return new CofferError('resource_missing', `No such payment_intent: '${id}'`, { param, missingId: id });
}

/**
 * A page of PaymentIntents, newest first, as Stripe lists them. `starting_after` pages towards older objects and
 * `ending_before` towards newer ones; both pages come back newest first. Ordering is by insertion sequence, so
 * a page boundary is exact even when many objects share a creation second.
 */
export async function listPaymentIntents(services: Services, scope: Scope, params: ListParams): Promise<Page<PaymentIntentRow>> {
  if (params.starting_after !== undefined && params.ending_before !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: ending_before, starting_after.', {
      param: 'ending_before',
    });
  }
  let query = services.db
    .selectFrom('payment_intents')
    .selectAll()
    .where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode);
  const created = params.created;
  if (typeof created === 'number') {
    query = query.where('created_at', '>=', new Date(created * 1000)).where('created_at', '<', new Date((created + 1) * 1000));
  } else if (created !== undefined) {
    if (created.gt !== undefined) query = query.where('created_at', '>=', new Date((created.gt + 1) * 1000));
    if (created.gte !== undefined) query = query.where('created_at', '>=', new Date(created.gte * 1000));
    if (created.lt !== undefined) query = query.where('created_at', '<', new Date(created.lt * 1000));
    if (created.lte !== undefined) query = query.where('created_at', '<', new Date((created.lte + 1) * 1000));
  }
  const cursorId = params.starting_after ?? params.ending_before;
  if (cursorId !== undefined) {
    const cursor = await services.db
      .selectFrom('payment_intents')
      .select('seq')
      .where('id', '=', cursorId)
      .where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode)
      .executeTakeFirst();
    if (cursor === undefined) throw cursorMissing(params.starting_after !== undefined ? 'starting_after' : 'ending_before', cursorId);
    query = params.starting_after !== undefined ? query.where('seq', '<', cursor.seq) : query.where('seq', '>', cursor.seq);
  }
  const ascending = params.ending_before !== undefined;
  const rows = await query
    .orderBy('seq', ascending ? 'asc' : 'desc')
    .limit(params.limit + 1)
    .execute();
  const hasMore = rows.length > params.limit;
  const page = rows.slice(0, params.limit);
  return { data: ascending ? page.reverse() : page, hasMore };
}
