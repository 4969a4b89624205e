import { escapeHtml } from '../../platform/html.ts';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { handleWalletNotification } from '../../flows/handle-wallet-notification.ts';
import { limits } from '../../limits.ts';
import { ObjectId, strictObject } from '../schemas.ts';
import { returnFromProvider } from '../../flows/payment-return.ts';

const HookParams = strictObject({
  provider: Type.Union([Type.Literal('alipay'), Type.Literal('wechat_pay')]),
  mode: Type.Union([Type.Literal('test'), Type.Literal('live')]),
});

/**
 * `/hooks/<provider>/<mode>`: where Alipay and WeChat Pay send their notifications. The body is kept exactly as
 * received (signatures are over its bytes) whatever its content type, and verified by the provider's connector
 * before anything is believed; the answer is in the provider's own words.
 */
const finishedPage = (text: string): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Coffer</title></head><body><p>${text}</p></body></html>`;

/**
 * Sends the browser on to the merchant with a page, not a redirect: the shopper arrives here from the access
 * control server's form, and browsers hold every redirect after a form post to that page's `form-action`, which
 * cannot name every merchant's site.
 */
const continuePage = (target: string): string => {
  const url = escapeHtml(target);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${url}">` +
    `<meta name="referrer" content="no-referrer"><title>Coffer</title></head><body><p><a href="${url}">Continue to the shop</a></p></body></html>`;
};

export function registerProviderHooks(app: FastifyInstance, services: Services): void {
  app.get('/hooks/return/:charge', {
    // Providers add their own parameters (Alipay's signed return fields): only `sig` is read, nothing else believed.
    schema: { params: strictObject({ charge: ObjectId }), querystring: Type.Object({ sig: Type.String({ maxLength: 100 }) }, { additionalProperties: true }) },
  }, async (request, reply) => {
    const { charge } = request.params as { charge: string };
    const { sig } = request.query as { sig: string };
    const target = await returnFromProvider(services, charge, sig);
    if ('redirect' in target) return reply.code(200).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(continuePage(target.redirect));
    return reply.code(target.page === 'finished' ? 200 : 404).type('text/html; charset=utf-8')
      .send(finishedPage(target.page === 'finished' ? 'Authentication finished. You can close this window.' : 'This link is not valid.'));
  });
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: limits.providerNotificationBytesMax }, (request, body, done) => {
      request.rawBody = body as string;
      done(null, body);
    });
    scope.post('/hooks/:provider/:mode', { schema: { params: HookParams } }, async (request, reply) => {
      const { provider, mode } = request.params as { provider: 'alipay' | 'wechat_pay'; mode: 'test' | 'live' };
      const headers: Record<string, string | undefined> = {};
      for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value[0] : value;
      const answer = await handleWalletNotification(services, provider, mode === 'live', { headers, rawBody: request.rawBody ?? '' });
      return reply.code(answer.statusCode).type(answer.contentType).send(answer.body);
    });
  });
}
