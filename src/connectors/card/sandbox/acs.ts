import type { FastifyInstance, FastifyReply } from 'fastify';
import { assertNever } from '../../../platform/assert.ts';
import { acsPathPrefix, acsTransIdOfChallengeRequest, type ChallengeView } from './access-control-server.ts';
import type { CardAcquirerSandbox } from './acquirer.ts';
import { challengePageCsp, renderChallengePage, renderMessagePage } from './acs-challenge-page.ts';

/**
 * The card sandbox's access control server on the web, under `/sandbox/card/acs`: the challenge page a payment's
 * `next_action.redirect_url` leads the shopper's browser to, and its two answers. The routes live in their own
 * encapsulated plugin with their own body parser (the page's forms only), so the host server's parsers never see
 * these bodies. The form is a few short fields; a larger body is refused.
 */
const formBodyBytesMax = 4_096;

const AcsParams = {
  type: 'object',
  properties: { acsTransId: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['acsTransId'],
  additionalProperties: false,
} as const;

const ChallengeQuery = {
  type: 'object',
  properties: { creq: { type: 'string', maxLength: 1024 } },
  additionalProperties: false,
} as const;

interface ChallengeRoute {
  Params: { acsTransId: string };
  Querystring: { creq?: string };
}

function sendPage(reply: FastifyReply, statusCode: number, html: string, formTarget: string | null): FastifyReply {
  return reply.code(statusCode)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', challengePageCsp(formTarget))
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .send(html);
}

function sendChallenge(reply: FastifyReply, view: ChallengeView, error: string | null): FastifyReply {
  const statusCode = view.state === 'open' ? 200 : view.state === 'expired' ? 410 : 409;
  return sendPage(reply, statusCode, renderChallengePage(view, error), view.state === 'open' ? view.returnOrigin : null);
}

function sendMessage(reply: FastifyReply, statusCode: number, title: string, message: string): FastifyReply {
  return sendPage(reply, statusCode, renderMessagePage(title, message), null);
}

export function registerCardAcsSandbox(app: FastifyInstance, sandbox: CardAcquirerSandbox): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: formBodyBytesMax },
      (_request, body, done) => done(null, body));
    scope.setErrorHandler(async (error, request, reply) => {
      const statusCode = typeof (error as { statusCode?: unknown }).statusCode === 'number' ? (error as { statusCode: number }).statusCode : 500;
      if (statusCode >= 500) request.log.error({ err: error }, 'card ACS sandbox failed');
      return sendMessage(reply, statusCode >= 500 ? 500 : statusCode, 'Not done', statusCode >= 500 ? 'The sandbox failed.' : 'The request is not valid.');
    });
    scope.setNotFoundHandler(async (_request, reply) => sendMessage(reply, 404, 'Not found', 'No such page.'));

    scope.get<ChallengeRoute>('/challenge/:acsTransId', { schema: { params: AcsParams, querystring: ChallengeQuery } }, async (request, reply) => {
      const { acsTransId } = request.params;
      const creq = request.query.creq;
      if (creq !== undefined && acsTransIdOfChallengeRequest(creq) !== acsTransId) {
        return sendMessage(reply, 400, 'Not done', 'The challenge request does not match this authentication.');
      }
      const view = await sandbox.challengeView(acsTransId);
      if (view === undefined) return sendMessage(reply, 404, 'Not found', 'There is no such authentication.');
      return sendChallenge(reply, view, null);
    });

    scope.post<Pick<ChallengeRoute, 'Params'>>('/challenge/:acsTransId', { schema: { params: AcsParams } }, async (request, reply) => {
      const form = new URLSearchParams(typeof request.body === 'string' ? request.body : '');
      const action = form.get('action');
      const formToken = form.get('form_token') ?? '';
      const answer = action === 'complete' ? { action, code: (form.get('code') ?? '').trim() } as const
        : action === 'fail' ? { action } as const
        : undefined;
      if (answer === undefined) return sendMessage(reply, 400, 'Not done', 'Choose Complete or Fail.');
      const result = await sandbox.answerChallenge(request.params.acsTransId, formToken, answer);
      switch (result.kind) {
        case 'finished':
          return reply.code(303).header('location', result.returnUrl).header('cache-control', 'no-store').send();
        case 'wrong_code': {
          const left = result.view.attemptsLeft;
          return sendChallenge(reply, result.view, `That code is not right: ${left} ${left === 1 ? 'try' : 'tries'} left.`);
        }
        case 'refused':
          return sendMessage(reply, result.httpStatus, 'Not done', result.message);
        default:
          return assertNever(result, 'challenge answer');
      }
    });
  }, { prefix: acsPathPrefix });
}
