import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { balanceObject } from '../../objects/balance.ts';
import { merchantAccounts } from '../../store/ledger.ts';
import { requestContext } from '../request-context.ts';
import { strictObject } from '../schemas.ts';
import { sendObject } from './common.ts';

export function registerBalanceRoutes(app: FastifyInstance, services: Services): void {
  app.get('/v1/balance', { config: { merchantApi: true }, schema: { querystring: strictObject({}) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const accounts = await merchantAccounts(services.db, ctx.actor.merchantId, ctx.actor.livemode);
    return sendObject(reply, balanceObject(accounts, ctx.actor.livemode, ctx.actor.apiVersion.shape));
  });
}
