import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { listBalanceTransactions, retrieveBalanceTransaction } from '../../flows/balance-transactions.ts';
import type { Services } from '../../flows/context.ts';
import { limits } from '../../limits.ts';
import { balanceObject } from '../../objects/balance.ts';
import { balanceTransactionObject } from '../../objects/balance-transaction.ts';
import { merchantAccounts } from '../../store/ledger.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Expand, ListQuery, NoParams, ObjectId, strictObject, type ListQueryParams } from '../schemas.ts';
import { expansions, listObject, sendObject } from './common.ts';
import { expandObjects } from './expand.ts';
import { parseCurrency } from '../../domain/money.ts';

/**
 * The balance transaction types Stripe documents for this filter. Any of them is accepted, and those Coffer never
 * records (payout, transfer, …) list nothing; anything else is a mistake, refused by name.
 */
const stripeTransactionTypes = [
  'adjustment', 'advance', 'advance_funding', 'anticipation_repayment', 'application_fee', 'application_fee_refund', 'charge',
  'climate_order_purchase', 'climate_order_refund', 'connect_collection_transfer', 'contribution', 'fee_credit_funding',
  'inbound_transfer', 'inbound_transfer_reversal', 'issuing_authorization_hold', 'issuing_authorization_release', 'issuing_dispute',
  'issuing_dispute_provisional_credit', 'issuing_dispute_provisional_credit_reversal', 'issuing_transaction', 'obligation_outbound',
  'obligation_reversal_inbound', 'payment', 'payment_failure_refund', 'payment_network_reserve_hold', 'payment_network_reserve_release',
  'payment_refund', 'payment_reversal', 'payment_unreconciled', 'payout', 'payout_cancel', 'payout_failure', 'payout_minimum_balance_hold',
  'payout_minimum_balance_release', 'refund', 'refund_failure', 'reserve_hold', 'reserve_release', 'reserve_transaction', 'reserved_funds',
  'stripe_balance_payment_debit', 'stripe_balance_payment_debit_reversal', 'stripe_fee', 'stripe_fx_fee', 'tax_fee', 'tax_fund', 'topup',
  'topup_reversal', 'transfer', 'transfer_cancel', 'transfer_failure', 'transfer_refund',
] as const;

const ListTransactionsQuery = strictObject({
  ...ListQuery,
  type: Type.Optional(Type.Union(stripeTransactionTypes.map((type) => Type.Literal(type)))),
  source: Type.Optional(ObjectId),
  currency: Type.Optional(Currency),
});

export function registerBalanceRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/balance', { config, schema: { querystring: NoParams } }, async (request, reply) => {
    const ctx = requestContext(request);
    const accounts = await merchantAccounts(services.db, ctx.actor.merchantId, ctx.actor.livemode);
    return sendObject(reply, balanceObject(accounts, ctx.actor.livemode, ctx.actor.apiVersion.shape));
  });

  app.get('/v1/balance_transactions/:id', { config: { ...config, expandable: ['source'] }, schema: { params: strictObject({ id: ObjectId }), querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansions((request.query as { expand?: string[] }).expand, ['source']);
    const row = await retrieveBalanceTransaction(services.db, ctx.actor, (request.params as { id: string }).id);
    const object = balanceTransactionObject(row, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  app.get('/v1/balance_transactions', { config: { ...config, expandable: ['source'] }, schema: { querystring: ListTransactionsQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { type?: string; source?: string; currency?: string };
    const expand = expansions(query.expand, ['source'], true);
    // A currency Coffer does not know is a mistake, not a filter that matches nothing.
    const currency = query.currency === undefined ? undefined : parseCurrency(query.currency).code;
    const page = await listBalanceTransactions(services.db, ctx.actor, { ...query, currency, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => balanceTransactionObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/balance_transactions', data, page.hasMore));
  });
}
