import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { limits } from '../../../limits.ts';
import { pageCsp, renderMessagePage, renderScanPage, safeReturnUrl, sandboxPrefix } from './scan-page.ts';
import { pageActions, weChatError, type WeChatAnswer, type WeChatPaySandbox } from './wechat-pay-sandbox.ts';

/**
 * The WeChat Pay sandbox's HTTP surface under `/sandbox/wechat-pay`: WeChat's real API paths (so the official
 * client works with `baseURL` pointed here), the tester's payment page, and the test controls. The routes live in
 * their own encapsulated plugin with their own body parsers, which keep the body as the exact text received:
 * WeChat's signatures are over those bytes, so nothing may parse and re-serialize them first.
 */
const strict = <T extends Parameters<typeof Type.Object>[0]>(properties: T) => Type.Object(properties, { additionalProperties: false });
const Count = Type.Integer({ minimum: 1, maximum: 1000 });
const DelayMs = Type.Integer({ minimum: 0, maximum: limits.providerCallTimeoutMs * 4 });

/** `POST /sandbox/wechat-pay/control`: the faults every sandbox offers, and this one's refund controls. */
export const ControlSettings = strict({
  reset: Type.Optional(Type.Literal(true)),
  answers: Type.Optional(strict({
    latencyMs: Type.Optional(DelayMs),
    error: Type.Optional(Type.Boolean()),
    timeout: Type.Optional(Type.Boolean()),
    count: Type.Optional(Count),
  })),
  notifications: Type.Optional(strict({
    drop: Type.Optional(Type.Boolean()),
    duplicate: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
    delayMs: Type.Optional(DelayMs),
    reorder: Type.Optional(Type.Boolean()),
    tamper: Type.Optional(Type.Union([Type.Literal('signature'), Type.Literal('amount'), Type.Literal('ciphertext'), Type.Literal('tag')])),
    count: Type.Optional(Count),
  })),
  retryScheduleDivisor: Type.Optional(Type.Number({ minimum: 1, maximum: 1_000_000 })),
  /** The next this many API answers are signed with a `WECHATPAY/SIGNTEST/` probe. */
  probeAnswers: Type.Optional(Count),
  /** The next this many API requests are refused with 429 FREQUENCY_LIMITED. */
  throttleRequests: Type.Optional(Count),
  refunds: Type.Optional(strict({
    outcome: Type.Optional(Type.Union([Type.Literal('SUCCESS'), Type.Literal('ABNORMAL'), Type.Literal('CLOSED')])),
    count: Type.Optional(Count),
    settleAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 24 * 3_600_000 })),
    balanceFen: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
  })),
});

/** An answer held by the `timeout` fault is dropped after this: longer than any caller waits. */
const heldAnswerMs = limits.providerCallTimeoutMs * 2;

function textParam(record: unknown, name: string): string | undefined {
  const value = typeof record === 'object' && record !== null ? (record as Record<string, unknown>)[name] : undefined;
  return typeof value === 'string' ? value : undefined;
}

function sendPage(reply: FastifyReply, statusCode: number, html: string): FastifyReply {
  return reply.code(statusCode)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', pageCsp)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .send(html);
}

const param = (request: FastifyRequest, name: string): string => textParam(request.params, name) ?? '';

/** `controls: false` leaves out the control endpoint (Coffer serves it only when COFFER_SANDBOX_CONTROLS is on). */
export function registerWeChatPaySandbox<DB>(app: FastifyInstance, sandbox: WeChatPaySandbox<DB>, options: { controls?: boolean } = {}): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(['application/json', 'application/x-www-form-urlencoded'], { parseAs: 'string', bodyLimit: limits.requestBodyBytesMax },
      (_request, body, done) => done(null, body));
    const sendAnswer = answerSender(sandbox);
    scope.setErrorHandler(async (error, request, reply) => {
      const statusCode = typeof (error as { statusCode?: unknown }).statusCode === 'number' ? (error as { statusCode: number }).statusCode : 500;
      if (statusCode >= 500) request.log.error({ err: error }, 'WeChat Pay sandbox failed');
      const message = statusCode < 500 && error instanceof Error ? error.message : 'system error';
      if (request.url.startsWith(`${sandboxPrefix}/v3/`)) {
        return sendAnswer(reply, statusCode < 500 ? weChatError(400, 'PARAM_ERROR', message) : weChatError(500, 'SYSTEM_ERROR', message));
      }
      return sendPage(reply, statusCode < 500 ? 400 : 500, renderMessagePage('Error', message));
    });
    scope.setNotFoundHandler(async (request, reply) => {
      if (request.url.startsWith(`${sandboxPrefix}/v3/`)) return sendAnswer(reply, weChatError(404, 'NOT_FOUND', 'no such API'));
      return sendPage(reply, 404, renderMessagePage('Not found', 'No such page.'));
    });
    registerApi(scope, sandbox, sendAnswer);
    registerPages(scope, sandbox);
    if (options.controls !== false) registerControl(scope, sandbox);
  }, { prefix: sandboxPrefix });
}

type AnswerSender = (reply: FastifyReply, answer: WeChatAnswer) => FastifyReply;

/** Every API answer is signed over its exact body text, errors and the empty 204 included. */
function answerSender<DB>(sandbox: WeChatPaySandbox<DB>): AnswerSender {
  return (reply, answer) => {
    const text = answer.body === null ? '' : JSON.stringify(answer.body);
    reply.code(answer.httpStatus).headers(sandbox.signAnswer(text));
    return text === '' ? reply.send() : reply.type('application/json; charset=utf-8').send(text);
  };
}

type Operation = (signer: string, input: unknown, request: FastifyRequest) => Promise<WeChatAnswer>;

/**
 * WeChat's API paths. Each request is authenticated first (401 SIGN_ERROR), then the test controls apply (429,
 * the error fault without acting), then the sandbox acts, and the answer may come late or, with the timeout
 * fault, never: the connection is held until the caller gives up, then dropped.
 */
function registerApi<DB>(scope: FastifyInstance, sandbox: WeChatPaySandbox<DB>, sendAnswer: AnswerSender): void {
  const held = new Set<Socket>();
  scope.addHook('onClose', async () => {
    for (const socket of held) socket.destroy();
    held.clear();
  });
  const hold = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    reply.hijack();
    const socket = request.raw.socket;
    held.add(socket);
    setTimeout(() => {
      held.delete(socket);
      socket.destroy();
    }, heldAnswerMs).unref();
    return reply;
  };
  const api = (operation: Operation) => async (request: FastifyRequest, reply: FastifyReply) => {
    const body = typeof request.body === 'string' ? request.body : '';
    const check = sandbox.verifyRequest({ method: request.method, url: request.raw.url ?? request.url, authorization: request.headers.authorization, body });
    if (!check.ok) return sendAnswer(reply, weChatError(401, 'SIGN_ERROR', `signature check failed: ${check.reason}`));
    if (sandbox.takeThrottle()) return sendAnswer(reply, weChatError(429, 'FREQUENCY_LIMITED', 'too many requests; slow down'));
    const faults = sandbox.faults.nextAnswer();
    if (faults.error === true) return sendAnswer(reply, weChatError(500, 'SYSTEM_ERROR', 'system busy (sandbox fault); retry with the same parameters'));
    let input: unknown;
    try {
      input = body === '' ? undefined : JSON.parse(body);
    } catch {
      return sendAnswer(reply, weChatError(400, 'PARAM_ERROR', 'the body is not valid JSON', { location: 'body' }));
    }
    const answer = await operation(check.mchid, input, request);
    if (faults.latencyMs !== undefined && faults.latencyMs > 0) await sleep(faults.latencyMs);
    return faults.timeout === true ? hold(request, reply) : sendAnswer(reply, answer);
  };
  scope.post('/v3/pay/transactions/native', api((signer, input) => sandbox.createOrder('NATIVE', signer, input)));
  scope.post('/v3/pay/transactions/jsapi', api((signer, input) => sandbox.createOrder('JSAPI', signer, input)));
  scope.post('/v3/pay/transactions/h5', api((signer, input) => sandbox.createOrder('MWEB', signer, input)));
  scope.get('/v3/pay/transactions/out-trade-no/:out_trade_no',
    api((signer, _input, request) => sandbox.queryByOutTradeNo(signer, param(request, 'out_trade_no'), request.query)));
  scope.get('/v3/pay/transactions/id/:transaction_id',
    api((signer, _input, request) => sandbox.queryByTransactionId(signer, param(request, 'transaction_id'), request.query)));
  scope.post('/v3/pay/transactions/out-trade-no/:out_trade_no/close',
    api((signer, input, request) => sandbox.closeOrder(signer, param(request, 'out_trade_no'), input)));
  scope.post('/v3/refund/domestic/refunds', api((signer, input) => sandbox.createRefund(signer, input)));
  scope.get('/v3/refund/domestic/refunds/:out_refund_no',
    api((signer, _input, request) => sandbox.queryRefund(signer, param(request, 'out_refund_no'))));
}

/** The tester's payment page (QR and H5 flows by token; the JSAPI flow by its signed parameters) and its forms. */
function registerPages<DB>(scope: FastifyInstance, sandbox: WeChatPaySandbox<DB>): void {
  scope.get('/scan/:token', async (request, reply) => {
    const view = await sandbox.scanView(param(request, 'token'));
    if (view === undefined) return sendPage(reply, 404, renderMessagePage('Not found', 'No such payment.'));
    return sendPage(reply, 200, renderScanPage(view, safeReturnUrl(textParam(request.query, 'redirect_url'))));
  });
  scope.post('/scan/:token/:action', async (request, reply) => {
    const token = param(request, 'token');
    const action = pageActions.find((known) => known === param(request, 'action'));
    if (action === undefined) return sendPage(reply, 404, renderMessagePage('Not found', 'No such action.'));
    const form = new URLSearchParams(typeof request.body === 'string' ? request.body : '');
    const result = await sandbox.pageAction(token, action, form.get('form_token') ?? '');
    if (!result.ok) return sendPage(reply, result.httpStatus, renderMessagePage('Not done', result.message));
    const returnUrl = safeReturnUrl(form.get('redirect_url'));
    const query = returnUrl === null ? '' : `?redirect_url=${encodeURIComponent(returnUrl)}`;
    return reply.code(303).header('location', `${sandboxPrefix}/scan/${encodeURIComponent(token)}${query}`).send();
  });
  // The JSAPI flow: the parameters the merchant's page would pass to WeixinJSBridge, checked, then the same page.
  // `redirect_url` stands for what the merchant's page does after WeixinJSBridge answers: the tester goes back to it.
  scope.get('/jsapi', async (request, reply) => {
    const names = ['appId', 'timeStamp', 'nonceStr', 'package', 'signType', 'paySign'] as const;
    const found = await sandbox.jsapiPageToken(Object.fromEntries(names.map((name) => [name, textParam(request.query, name)])));
    if (!found.ok) return sendPage(reply, 400, renderMessagePage('Payment refused', found.message));
    const returnUrl = safeReturnUrl(textParam(request.query, 'redirect_url'));
    if (returnUrl !== null) return reply.code(303).header('location', `${sandboxPrefix}/scan/${encodeURIComponent(found.token)}?redirect_url=${encodeURIComponent(returnUrl)}`).send();
    const view = await sandbox.scanView(found.token);
    if (view === undefined) return sendPage(reply, 404, renderMessagePage('Not found', 'No such payment.'));
    return sendPage(reply, 200, renderScanPage(view, null));
  });
  // WeChat's web sign-in: open.weixin.qq.com's authorize page and api.weixin.qq.com's code-for-openid endpoint.
  const queryOf = (request: FastifyRequest, names: readonly string[]) => Object.fromEntries(names.map((name) => [name, textParam(request.query, name)]));
  scope.get('/connect/oauth2/authorize', async (request, reply) => {
    const result = sandbox.signIn.authorize(queryOf(request, ['appid', 'redirect_uri', 'response_type', 'scope', 'state']));
    if (!result.ok) return sendPage(reply, 400, renderMessagePage('Sign-in refused', result.message));
    return reply.code(302).header('location', result.location).send();
  });
  scope.get('/sns/oauth2/access_token', async (request, reply) =>
    reply.code(200).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(sandbox.signIn.accessToken(queryOf(request, ['appid', 'secret', 'code', 'grant_type'])))));
}

function registerControl<DB>(scope: FastifyInstance, sandbox: WeChatPaySandbox<DB>): void {
  scope.post('/control', async (request, reply) => {
    let settings: unknown;
    try {
      settings = JSON.parse(typeof request.body === 'string' ? request.body : '');
    } catch {
      return reply.code(400).send({ error: 'the body is not JSON' });
    }
    if (!Value.Check(ControlSettings, settings)) {
      const first = Value.Errors(ControlSettings, settings).First();
      return reply.code(400).send({ error: `${first?.path ?? '/'}: ${first?.message ?? 'invalid'}` });
    }
    const { reset, refunds, probeAnswers, throttleRequests, ...faults } = settings;
    if (reset === true) sandbox.resetControls();
    sandbox.faults.set(faults);
    if (probeAnswers !== undefined) sandbox.probeNextAnswers(probeAnswers);
    if (throttleRequests !== undefined) sandbox.throttleNextRequests(throttleRequests);
    if (refunds?.outcome !== undefined) sandbox.refunds.settleNextAs(refunds.outcome, refunds.count ?? 1);
    if (refunds?.settleAfterMs !== undefined) sandbox.refunds.settleAfterMs = refunds.settleAfterMs;
    if (refunds?.balanceFen !== undefined) sandbox.refunds.balanceFen = refunds.balanceFen;
    return reply.code(204).send();
  });
}
