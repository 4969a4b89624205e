import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AssertionFailure } from '../../../platform/assert.ts';
import type { SandboxFaultSettings } from '../../sandbox-faults.ts';
import { alipaySandboxLimits, type AlipaySandbox, type CashierAction, type CashierAnswer, type GatewayAnswer } from './alipay-sandbox.ts';

/**
 * The Alipay sandbox's HTTP surface, registered in its own encapsulated scope: Alipay's wire is not Coffer's, so
 * the scope drops the host's body parsers and reads form bodies as raw strings (the signature is over the exact
 * values sent) and the query string from the raw URL (whatever query parser the host installed).
 *
 * - `GET|POST /sandbox/alipay/gateway.do`: the v2 gateway (API calls; page trades' GET URLs and POST forms).
 * - `GET /sandbox/alipay/cashier/:token` and `POST /sandbox/alipay/cashier/:token/(scan|pay|cancel)`: the cashier.
 * - `POST /sandbox/alipay/control`: the test controls (JSON `SandboxFaultSettings`, `{"reset":true}`,
 *   `{"notifyWaitBuyerPay":true}`).
 */

const cashierTokenPattern = /^[0-9A-Za-z]{24}$/;
const cashierActions: readonly CashierAction[] = ['scan', 'pay', 'cancel'];

function rawQuery(request: FastifyRequest): string {
  const url = request.raw.url ?? '';
  const at = url.indexOf('?');
  return at < 0 ? '' : url.slice(at + 1);
}

function rawBody(request: FastifyRequest): string {
  return typeof request.body === 'string' ? request.body : '';
}

/** A `timeout` fault: the sandbox has acted; the caller waits for an answer that never comes, then gives up. */
async function holdUntilCallerLeaves(request: FastifyRequest): Promise<void> {
  const socket = request.raw.socket;
  if (socket.destroyed) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, alipaySandboxLimits.heldAnswerMsMax);
    socket.once('close', done);
  });
}

async function sendPage(reply: FastifyReply, answer: Extract<GatewayAnswer | CashierAnswer, { kind: 'page' }>): Promise<FastifyReply> {
  return reply.code(answer.statusCode).header('content-security-policy', answer.csp).header('cache-control', 'no-store')
    .type('text/html; charset=utf-8').send(answer.html);
}

async function sendGatewayAnswer(request: FastifyRequest, reply: FastifyReply, answer: GatewayAnswer): Promise<FastifyReply> {
  switch (answer.kind) {
    case 'page':
      return sendPage(reply, answer);
    case 'redirect':
      return reply.redirect(answer.location, 302);
    case 'json':
      if (answer.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(answer.latencyMs, alipaySandboxLimits.heldAnswerMsMax)));
      if (answer.hold) {
        reply.hijack();
        await holdUntilCallerLeaves(request);
        reply.raw.destroy();
        return reply;
      }
      return reply.header('trace_id', randomBytes(16).toString('hex')).type('application/json; charset=utf-8').send(answer.body);
  }
}

async function sendCashierAnswer(reply: FastifyReply, answer: CashierAnswer): Promise<FastifyReply> {
  return answer.kind === 'page' ? sendPage(reply, answer) : reply.redirect(answer.location, 303);
}

type ControlSettings = SandboxFaultSettings & { reset?: true; notifyWaitBuyerPay?: boolean };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const integerIn = (min: number, max: number) => (value: unknown) => Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
const isBoolean = (value: unknown) => typeof value === 'boolean';
const settingChecks: Record<string, (value: unknown) => boolean> = {
  reset: (value) => value === true,
  notifyWaitBuyerPay: isBoolean,
  retryScheduleDivisor: (value) => typeof value === 'number' && value >= 1 && value <= 1_000_000,
};
const faultChecks: Record<string, Record<string, (value: unknown) => boolean>> = {
  answers: { latencyMs: integerIn(0, alipaySandboxLimits.heldAnswerMsMax), error: isBoolean, timeout: isBoolean, count: integerIn(1, 1000) },
  notifications: {
    drop: isBoolean,
    duplicate: integerIn(1, alipaySandboxLimits.duplicatesMax),
    delayMs: integerIn(0, 24 * 3_600_000),
    reorder: isBoolean,
    tamper: (value) => value === 'signature' || value === 'amount' || value === 'ciphertext' || value === 'tag',
    count: integerIn(1, 1000),
  },
};

/** The control body, checked field by field (unknown fields refused); a string names what is wrong. */
function parseControl(body: unknown): ControlSettings | string {
  if (!isRecord(body)) return 'the body must be a JSON object';
  for (const [name, value] of Object.entries(body)) {
    const checks = faultChecks[name];
    if (checks === undefined) {
      if (settingChecks[name]?.(value) !== true) return `${name} is unknown or out of range`;
      continue;
    }
    if (!isRecord(value)) return `${name} must be an object`;
    for (const [field, fieldValue] of Object.entries(value)) {
      if (checks[field]?.(fieldValue) !== true) return `${name}.${field} is unknown or out of range`;
    }
  }
  return body as ControlSettings;
}

/** `controls: false` leaves out the control endpoint (Coffer serves it only when COFFER_SANDBOX_CONTROLS is on). */
export function registerAlipaySandbox(app: FastifyInstance, sandbox: AlipaySandbox, options: { controls?: boolean } = {}): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    const bodyLimit = alipaySandboxLimits.bodyBytesMax;
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_request, body, done) => done(null, body));
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, scope.getDefaultJsonParser('error', 'error'));
    scope.setErrorHandler(async (error, request, reply) => {
      if (error instanceof AssertionFailure) throw error;
      // Framework errors (body too large, unsupported media type) carry their 4xx status; anything else is a failure.
      const given = (error as { statusCode?: unknown }).statusCode;
      const statusCode = typeof given === 'number' && given >= 400 && given < 500 ? given : 500;
      if (statusCode === 500) request.log.error({ err: error }, 'alipay sandbox failed');
      const message = statusCode === 500 || !(error instanceof Error) ? 'internal error' : error.message;
      return reply.code(statusCode).type('text/plain; charset=utf-8').send(message);
    });

    scope.route({
      method: ['GET', 'POST'],
      url: '/sandbox/alipay/gateway.do',
      handler: async (request, reply) => sendGatewayAnswer(request, reply, await sandbox.gateway({ query: rawQuery(request), body: rawBody(request) })),
    });

    scope.get<{ Params: { token: string } }>('/sandbox/alipay/cashier/:token', async (request, reply) => {
      if (!cashierTokenPattern.test(request.params.token)) return reply.code(404).type('text/plain; charset=utf-8').send('no such trade');
      return sendCashierAnswer(reply, await sandbox.cashierPage(request.params.token));
    });

    scope.post<{ Params: { token: string; action: string } }>('/sandbox/alipay/cashier/:token/:action', async (request, reply) => {
      const action = cashierActions.find((known) => known === request.params.action);
      if (!cashierTokenPattern.test(request.params.token) || action === undefined) {
        return reply.code(404).type('text/plain; charset=utf-8').send('no such trade or action');
      }
      return sendCashierAnswer(reply, await sandbox.cashierAction(request.params.token, action, rawBody(request)));
    });

    if (options.controls !== false) scope.post('/sandbox/alipay/control', async (request, reply) => {
      const settings = parseControl(request.body);
      if (typeof settings === 'string') return reply.code(400).send({ error: settings });
      if (settings.reset === true) sandbox.faults.reset();
      sandbox.faults.set(settings);
      if (settings.notifyWaitBuyerPay !== undefined) sandbox.notifyWaitBuyerPay = settings.notifyWaitBuyerPay;
      return reply.send({ status: 'ok' });
    });
  });
}
