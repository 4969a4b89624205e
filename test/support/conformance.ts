import { createPrivateKey, sign } from 'node:crypto';
import http from 'node:http';
import Fastify from 'fastify';
import { sql, type Kysely } from 'kysely';
import { AlipayConnector } from '../../src/connectors/alipay/client.ts';
import { AlipaySandbox } from '../../src/connectors/alipay/sandbox/alipay-sandbox.ts';
import { generateAlipaySandboxCredentials } from '../../src/connectors/alipay/sandbox/credentials.ts';
import { registerAlipaySandbox } from '../../src/connectors/alipay/sandbox/register-alipay-sandbox.ts';
import type { NotificationSender, SandboxFaults } from '../../src/connectors/sandbox-faults.ts';
import type { IncomingNotification, NotificationAnswer, WalletConnector } from '../../src/connectors/wallet.ts';
import { WeChatPayConnector } from '../../src/connectors/wechat-pay/client.ts';
import { registerWeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/register-wechat-pay-sandbox.ts';
import { generateWeChatPaySandboxCredentials } from '../../src/connectors/wechat-pay/sandbox/sandbox-credentials.ts';
import { WeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/wechat-pay-sandbox.ts';
import { createLogger } from '../../src/platform/logger.ts';
import type { Database } from '../../src/store/database.ts';
import { TestClock } from './clock.ts';

/**
 * The connector harnesses of the wallet conformance suite (test/connectors/conformance.test.ts): for each wallet
 * provider, how to start its sandbox (the provider's side of the wire, over HTTP on loopback) and a connector
 * pointed at it, how the shopper acts on the page a QR code opens, how the notifications the sandbox sends reach
 * Coffer's endpoint (a real HTTP receiver here), and what differs by provider on purpose (how refunds settle, the
 * answer shapes the provider reads, which parts of a notification can be tampered with). The scenarios themselves
 * know no provider: everything provider-specific they need is a member of `ConnectorHarness`.
 */

/** The scenario keys a harness may declare a known divergence for (see `HarnessFactory.knownDivergences`). */
export type ScenarioKey =
  | 'create' | 'pendingBeforePay' | 'paid' | 'notification' | 'tampered' | 'refund' | 'close' | 'closeBeforeShopper'
  | 'amountMismatch' | 'answerFaults' | 'currency' | 'capabilities';

/** One way to change one byte of a genuine notification. */
export interface Tampering {
  /** What is changed, for messages ("signature", "amount", "ciphertext"). */
  part: string;
  apply(notification: IncomingNotification): IncomingNotification;
}

/** What the provider reads in Coffer's answer to a notification, from its documentation. */
export interface AnswerRules {
  /** How the provider documents "received": it stops sending. */
  describedAs: string;
  received(answer: NotificationAnswer): boolean;
  /** The provider will send it again. */
  sendAgain(answer: NotificationAnswer): boolean;
}

export interface ConnectorOptions {
  timeoutMs?: number;
  /** Another merchant account (Alipay app id, WeChat mchid) than the one the sandbox knows. */
  account?: string;
}

export interface ConnectorHarness {
  readonly provider: WalletConnector['name'];
  readonly connector: WalletConnector;
  /** The merchant account the sandbox was set up with (Alipay app id, WeChat mchid). */
  readonly merchantAccount: string;
  /** Coffer's notification endpoint for this provider (the receiver below). */
  readonly notifyUrl: string;
  readonly faults: SandboxFaults;
  /** A second connector on the same sandbox and keys, with its own call timeout, or configured for another merchant account. */
  connectorWith(options: ConnectorOptions): WalletConnector;
  /** The shopper opens the page the QR code leads to and presses a button; returns the HTTP status (303: done). */
  shopper(qrCode: string, action: 'scan' | 'pay'): Promise<number>;
  /** The page the QR code opens, as the shopper's browser gets it. */
  openPage(qrCode: string): Promise<{ status: number; html: string }>;
  /**
   * Whatever makes a created QR trade exist at the provider. Alipay: a precreated trade exists once its QR code
   * is scanned (before that, query and close answer ACQ.TRADE_NOT_EXIST). WeChat Pay: it exists from its creation.
   */
  bringIntoBeing(qrCode: string): Promise<void>;
  /** One turn of the sandbox's background work; returns the notifications Coffer's endpoint received in it. */
  deliverNotifications(): Promise<IncomingNotification[]>;
  /** From now on the endpoint answers the sandbox with `connector.notificationAnswer(accepted)`. */
  answerNotifications(accepted: boolean): void;
  readonly answerRules: AnswerRules;
  /** `at once`: a refund's first answer is final. `later`: it is processing, and settles at the sandbox afterwards. */
  readonly refundsSettle: 'at once' | 'later';
  /** Lets the sandbox settle every refund that is processing (and send their notifications). */
  settleRefunds(): Promise<void>;
  /** Rows of the sandbox's own trade table for this out_trade_no. */
  tradesAtSandbox(reference: string): Promise<number>;
  /** The refunds the sandbox holds against a trade (those that took or hold money), read from its own tables. */
  refundsAtSandbox(reference: string): Promise<{ count: number; totalMinor: bigint }>;
  readonly tamperings: readonly Tampering[];
  /** Clears the test controls a scenario set. */
  resetControls(): void;
  stop(): Promise<void>;
}

export interface HarnessFactory {
  /** The describe title. */
  readonly title: string;
  /**
   * Scenarios this provider's connector is known to fail, with the evidence: they still run, as `todo`, so that
   * the divergence stays visible in every run (and shows when it is fixed).
   */
  readonly knownDivergences: Partial<Record<ScenarioKey, string>>;
  start(db: Kysely<Database>): Promise<ConnectorHarness>;
}

/** How a sandbox reaches Coffer's endpoint: plain HTTP, as a provider does (headers and body as sent). */
export const sendOverHttp: NotificationSender = async (url, request) => {
  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body });
  return { statusCode: response.status, body: await response.text() };
};

/** Coffer's notification endpoint in miniature: keeps each request exactly as received, answers with `answer`. */
export class NotificationReceiver {
  readonly received: IncomingNotification[] = [];
  answer: NotificationAnswer = { statusCode: 500, contentType: 'text/plain', body: 'no answer set' };
  #server: http.Server | undefined;

  async start(path: string): Promise<string> {
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const headers: Record<string, string | undefined> = {};
        for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value.join(',') : value;
        this.received.push({ headers, rawBody: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(this.answer.statusCode, { 'content-type': this.answer.contentType }).end(this.answer.body);
      });
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the receiver has no address');
    return `http://127.0.0.1:${address.port}${path}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }
}

/** Both sandboxes' shopper pages: a form per button carrying the page's `form_token`, posted to `<page>/<action>`. */
async function pressOnPage(pageUrl: string, action: string): Promise<number> {
  const html = await (await fetch(pageUrl)).text();
  const formToken = /name="form_token" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const response = await fetch(`${pageUrl}/${action}`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `form_token=${formToken}`, redirect: 'manual',
  });
  await response.arrayBuffer();
  return response.status;
}

async function openPage(pageUrl: string): Promise<{ status: number; html: string }> {
  const response = await fetch(pageUrl);
  return { status: response.status, html: await response.text() };
}

/** Base64 with one bit of the byte at `index` flipped: one byte of what it encodes changed. */
export function flipBase64Byte(text: string, index: number): string {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new Error('not canonical base64: re-encoding would change more than one byte');
  const at = index < 0 ? bytes.length + index : index;
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  return bytes.toString('base64');
}

function headerName(headers: Record<string, string | undefined>, name: string): string {
  const found = Object.keys(headers).find((key) => key.toLowerCase() === name);
  if (found === undefined) throw new Error(`the notification has no ${name} header`);
  return found;
}

/** A form body with one field's value replaced; every other field stays byte for byte as received. */
function replaceFormField(rawBody: string, name: string, change: (value: string) => string): string {
  let replaced = false;
  const parts = rawBody.split('&').map((part) => {
    const field = new URLSearchParams(part);
    const value = field.get(name);
    if (value === null || part.slice(0, part.indexOf('=')) !== name) return part;
    replaced = true;
    return new URLSearchParams({ [name]: change(value) }).toString();
  });
  if (!replaced) throw new Error(`the form has no ${name} field`);
  return parts.join('&');
}

const logger = createLogger('silent');

/** Alipay (v2 gateway) through its sandbox: notifications are signed forms, refunds are final in their first answer. */
export const alipayHarness: HarnessFactory = {
  title: 'Alipay',
  knownDivergences: {},
  async start(db) {
    const credentials = generateAlipaySandboxCredentials();
    const clock = new TestClock();
    const receiver = new NotificationReceiver();
    const notifyUrl = await receiver.start('/hooks/alipay/test');
    let origin = '';
    const sandbox = new AlipaySandbox({ db, clock, credentials, cashierBaseUrl: () => `${origin}/sandbox/alipay`, send: sendOverHttp });
    const app = Fastify();
    registerAlipaySandbox(app, sandbox);
    origin = await app.listen({ port: 0, host: '127.0.0.1' });
    const connectorWith = (options: ConnectorOptions) => new AlipayConnector({
      appId: options.account ?? credentials.appId,
      appPrivateKeyPem: credentials.appPrivateKeyPem,
      alipayPublicKeyPem: credentials.alipayPublicKeyPem,
      gateway: `${origin}/sandbox/alipay/gateway.do`,
      timeoutMs: options.timeoutMs ?? 5_000,
      logger,
    });
    const connector = connectorWith({});
    receiver.answer = connector.notificationAnswer(true);
    return {
      provider: 'alipay',
      connector,
      merchantAccount: credentials.appId,
      notifyUrl,
      faults: sandbox.faults,
      connectorWith,
      shopper: pressOnPage,
      openPage,
      bringIntoBeing: async (qrCode) => {
        const status = await pressOnPage(qrCode, 'scan');
        if (status !== 303) throw new Error(`scanning the QR code answered ${status}`);
      },
      deliverNotifications: async () => {
        receiver.received.length = 0;
        await sandbox.deliverDueNotifications(100);
        return receiver.received.splice(0);
      },
      answerNotifications: (accepted) => {
        receiver.answer = connector.notificationAnswer(accepted);
      },
      answerRules: {
        describedAs: 'HTTP 200 with the body `success`; any other body is sent again',
        received: (answer) => answer.statusCode === 200 && answer.body === 'success',
        sendAgain: (answer) => answer.body !== 'success',
      },
      refundsSettle: 'at once',
      settleRefunds: async () => {},
      tradesAtSandbox: async (reference) => {
        const found = await sql<{ count: number }>`
          SELECT count(*)::int AS count FROM sandbox_alipay_trades WHERE out_trade_no = ${reference}`.execute(db);
        return Number(found.rows[0]?.count ?? 0);
      },
      refundsAtSandbox: async (reference) => {
        const found = await sql<{ count: number; total: bigint | number | string }>`
          SELECT count(*)::int AS count, coalesce(sum(r.refund_cents), 0)::bigint AS total
          FROM sandbox_alipay_refunds r JOIN sandbox_alipay_trades t ON t.trade_no = r.trade_no
          WHERE t.out_trade_no = ${reference}`.execute(db);
        return { count: Number(found.rows[0]?.count ?? 0), totalMinor: BigInt(found.rows[0]?.total ?? 0) };
      },
      tamperings: [
        {
          part: 'signature',
          apply: (notification) => ({ ...notification, rawBody: replaceFormField(notification.rawBody, 'sign', (value) => flipBase64Byte(value, 0)) }),
        },
        {
          // The last digit of total_amount: one byte of the raw form.
          part: 'amount',
          apply: (notification) => ({
            ...notification,
            rawBody: replaceFormField(notification.rawBody, 'total_amount', (value) => `${value.slice(0, -1)}${(Number(value.at(-1)) + 1) % 10}`),
          }),
        },
      ],
      resetControls: () => {
        sandbox.faults.reset();
        receiver.answer = connector.notificationAnswer(true);
      },
      stop: async () => {
        await app.close();
        await receiver.stop();
      },
    };
  },
};

/** WeChat Pay (API v3) through its sandbox: callbacks are signed JSON with an encrypted resource; refunds settle later. */
export const weChatPayHarness: HarnessFactory = {
  title: 'WeChat Pay',
  knownDivergences: {},
  async start(db) {
    const credentials = generateWeChatPaySandboxCredentials();
    const sandboxClock = new TestClock();
    const connectorClock = new TestClock();
    const receiver = new NotificationReceiver();
    const notifyUrl = await receiver.start('/hooks/wechat_pay/test');
    let origin = '';
    const sandbox = new WeChatPaySandbox({ db, clock: sandboxClock, credentials, scanBaseUrl: () => `${origin}/sandbox/wechat-pay`, send: sendOverHttp });
    const app = Fastify();
    registerWeChatPaySandbox(app, sandbox);
    origin = await app.listen({ port: 0, host: '127.0.0.1' });
    const connectorWith = (options: ConnectorOptions) => new WeChatPayConnector({
      mchid: options.account ?? credentials.mchid,
      appid: credentials.appid,
      merchantSerialNo: credentials.merchantSerialNo,
      merchantPrivateKeyPem: credentials.merchantPrivateKeyPem,
      platformPublicKeyId: credentials.platformPublicKeyId,
      platformPublicKeyPem: credentials.platformPublicKeyPem,
      apiV3Key: credentials.apiV3Key,
      baseUrl: `${origin}/sandbox/wechat-pay`,
      clock: connectorClock,
      logger,
      timeoutMs: options.timeoutMs ?? 5_000,
    });
    const connector = connectorWith({});
    receiver.answer = connector.notificationAnswer(true);
    const deliverNotifications = async () => {
      receiver.received.length = 0;
      await sandbox.deliverDueNotifications(100);
      return receiver.received.splice(0);
    };
    const resign = (notification: IncomingNotification, rawBody: string): IncomingNotification => {
      const timestamp = notification.headers[headerName(notification.headers, 'wechatpay-timestamp')] ?? '';
      const nonce = notification.headers[headerName(notification.headers, 'wechatpay-nonce')] ?? '';
      const signature = sign('sha256', Buffer.from(`${timestamp}\n${nonce}\n${rawBody}\n`, 'utf8'), createPrivateKey(credentials.platformPrivateKeyPem));
      return { rawBody, headers: { ...notification.headers, [headerName(notification.headers, 'wechatpay-signature')]: signature.toString('base64') } };
    };
    const flipCiphertext = (rawBody: string): string => {
      const ciphertext = (JSON.parse(rawBody) as { resource: { ciphertext: string } }).resource.ciphertext;
      const changed = rawBody.replace(`"ciphertext":"${ciphertext}"`, `"ciphertext":"${flipBase64Byte(ciphertext, 0)}"`);
      if (changed === rawBody) throw new Error('the ciphertext was not found in the raw body');
      return changed;
    };
    return {
      provider: 'wechat_pay',
      connector,
      merchantAccount: credentials.mchid,
      notifyUrl,
      faults: sandbox.faults,
      connectorWith,
      shopper: pressOnPage,
      openPage,
      bringIntoBeing: async () => {},
      deliverNotifications,
      answerNotifications: (accepted) => {
        receiver.answer = connector.notificationAnswer(accepted);
      },
      answerRules: {
        describedAs: 'a 2xx (200 or 204) with no body; a 4xx or 5xx is sent again',
        received: (answer) => answer.statusCode >= 200 && answer.statusCode < 300 && answer.body === '',
        sendAgain: (answer) => answer.statusCode >= 400 && answer.statusCode < 600,
      },
      refundsSettle: 'later',
      settleRefunds: async () => {
        sandboxClock.offsetMs += sandbox.refunds.settleAfterMs + 1;
        await deliverNotifications();
      },
      tradesAtSandbox: async (reference) => {
        const found = await sql<{ count: number }>`
          SELECT count(*)::int AS count FROM sandbox_wechat_pay_transactions WHERE out_trade_no = ${reference}`.execute(db);
        return Number(found.rows[0]?.count ?? 0);
      },
      refundsAtSandbox: async (reference) => {
        const found = await sql<{ count: number; total: bigint | number | string }>`
          SELECT count(*)::int AS count, coalesce(sum(r.amount_refund), 0)::bigint AS total
          FROM sandbox_wechat_pay_refunds r JOIN sandbox_wechat_pay_transactions t ON t.transaction_id = r.transaction_id
          WHERE t.out_trade_no = ${reference} AND r.status <> 'CLOSED'`.execute(db);
        return { count: Number(found.rows[0]?.count ?? 0), totalMinor: BigInt(found.rows[0]?.total ?? 0) };
      },
      tamperings: [
        {
          part: 'signature',
          apply: (notification) => {
            const name = headerName(notification.headers, 'wechatpay-signature');
            return { ...notification, headers: { ...notification.headers, [name]: flipBase64Byte(notification.headers[name] ?? '', 0) } };
          },
        },
        {
          part: 'ciphertext',
          apply: (notification) => ({ ...notification, rawBody: flipCiphertext(notification.rawBody) }),
        },
        {
          // Only WeChat's key can sign this: it shows that the AES-GCM authentication refuses it on its own.
          part: 'ciphertext, re-signed with the WeChat Pay platform key',
          apply: (notification) => resign(notification, flipCiphertext(notification.rawBody)),
        },
      ],
      resetControls: () => {
        sandbox.resetControls();
        receiver.answer = connector.notificationAnswer(true);
      },
      stop: async () => {
        await app.close();
        await receiver.stop();
      },
    };
  },
};

/** Every wallet connector the conformance suite runs against. */
export const walletHarnesses: readonly HarnessFactory[] = [alipayHarness, weChatPayHarness];
