import http from 'node:http';
import https from 'node:https';
import { Secret } from '../platform/secret.ts';
import { signatureHeader } from '../platform/timestamped-signature.ts';

/**
 * How messages reach shoppers (receipts, one-time codes): by SMS or email, through a notifier. Messages are
 * written to `shopper_messages` in the transaction that makes them (an outbox) and sent afterwards by the
 * `deliver-shopper-messages` job, never inside a transaction.
 *
 * - Test mode: the sandbox outbox. Nothing leaves the machine; `/sandbox/outbox` shows what was sent.
 * - Live mode: the operator's gateway (`COFFER_SHOPPER_NOTIFY_URL`), the adapter to their SMS and email
 *   providers. Each message is one POST of JSON, signed like Coffer's webhooks (`Coffer-Signature: t=…,v1=…`,
 *   HMAC-SHA256 of `t.body` under `COFFER_SHOPPER_NOTIFY_SECRET_FILE`'s secret) and keyed by the message id
 *   (`Idempotency-Key`), so that a retried message can be recognized.
 */
export interface ShopperMessage {
  id: string;
  channel: 'sms' | 'email';
  recipient: string;
  subject: string;
  body: string;
  reference: string;
}

export type NotifierResult = { ok: true } | { ok: false; retry: boolean; reason: string };

export interface ShopperNotifier {
  readonly name: string;
  send(message: ShopperMessage): Promise<NotifierResult>;
}

/** Test mode: the message stays in the outbox for the tester to read; sending it is taking note that it was. */
export class SandboxOutboxNotifier implements ShopperNotifier {
  readonly name = 'sandbox-outbox';
  async send(): Promise<NotifierResult> {
    return { ok: true };
  }
}

export interface GatewayNotifierOptions {
  url: string;
  secret: string;
  timeoutMs?: number;
  nowMs: () => number;
}

/** Live mode: the operator's gateway. 2xx: sent; 4xx other than 408 and 429: refused for good; anything else: again later. */
export class GatewayNotifier implements ShopperNotifier {
  readonly name = 'gateway';
  readonly #url: URL;
  readonly #secret: Secret<string>;
  readonly #timeoutMs: number;
  readonly #nowMs: () => number;

  constructor(options: GatewayNotifierOptions) {
    this.#url = new URL(options.url);
    this.#secret = new Secret(options.secret);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#nowMs = options.nowMs;
  }

  send(message: ShopperMessage): Promise<NotifierResult> {
    const body = JSON.stringify({ id: message.id, channel: message.channel, to: message.recipient, subject: message.subject, body: message.body, reference: message.reference });
    const timestamp = Math.floor(this.#nowMs() / 1000);
    const headers = {
      'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'idempotency-key': message.id,
      'coffer-signature': signatureHeader([this.#secret.reveal()], body, timestamp),
    };
    const client = this.#url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const request = client.request(this.#url, { method: 'POST', headers, timeout: this.#timeoutMs }, (response) => {
        response.resume();
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve({ ok: true });
          else resolve({ ok: false, retry: status === 408 || status === 429 || status >= 500 || status < 200, reason: `the gateway answered ${status}` });
        });
      });
      request.on('timeout', () => request.destroy(new Error('the gateway did not answer in time')));
      request.on('error', (error) => resolve({ ok: false, retry: true, reason: error.message }));
      request.end(body);
    });
  }
}
