import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Request signing, for merchants that want more than a bearer key: a key created with `--require-signing` comes
 * with a signing secret that never travels with requests, and every request made with that key must carry
 *
 *   Coffer-Signature: t=<unix seconds>,nonce=<16 to 64 characters [A-Za-z0-9_-]>,v2=<hex HMAC-SHA256>
 *
 * where the HMAC, keyed with the signing secret, is over these eight lines joined by "\n":
 *
 *   t
 *   nonce
 *   METHOD                 (GET, POST, DELETE)
 *   path and query string  (exactly as sent: /v1/payment_intents?limit=3)
 *   Content-Type           (the header's value as sent; empty when there is none)
 *   Idempotency-Key        (likewise)
 *   Stripe-Version         (likewise)
 *   hex SHA-256 of the body bytes (of the empty string when there is none)
 *
 * Coffer refuses a request whose timestamp is more than five minutes from its clock, whose nonce it has seen for
 * that key, or whose HMAC does not match. A captured request can therefore be neither changed (its body, or the
 * headers that change what it does) nor replayed, even by someone who also holds the API key. The first scheme,
 * `v1`, covered neither the idempotency key nor the API version, so that stripping the key from a retry could
 * make it a second payment: it is refused, with a message that says to sign `v2`.
 */
export const signatureHeaderName = 'coffer-signature';
export const signatureToleranceSeconds = 300;
const noncePattern = /^[A-Za-z0-9_-]{16,64}$/;

export interface SignedParts {
  method: string;
  pathAndQuery: string;
  body: string | Buffer;
  /** The request's Content-Type, Idempotency-Key and Stripe-Version headers as sent (absent: undefined). */
  contentType?: string | undefined;
  idempotencyKey?: string | undefined;
  stripeVersion?: string | undefined;
}

export function signedPayload(timestamp: number, nonce: string, parts: SignedParts): string {
  const bodyHash = createHash('sha256').update(parts.body).digest('hex');
  return [
    String(timestamp), nonce, parts.method.toUpperCase(), parts.pathAndQuery,
    parts.contentType ?? '', parts.idempotencyKey ?? '', parts.stripeVersion ?? '', bodyHash,
  ].join('\n');
}

/** The header value for a request: what a merchant's client computes (this function is that client, in Node). */
export function signRequest(secret: string, parts: SignedParts, timestamp = Math.floor(Date.now() / 1000), nonce = randomBytes(18).toString('base64url')): string {
  const mac = createHmac('sha256', secret).update(signedPayload(timestamp, nonce, parts)).digest('hex');
  return `t=${timestamp},nonce=${nonce},v2=${mac}`;
}

export type SignatureVerdict =
  | { ok: true; nonce: string }
  | { ok: false; reason: 'missing' | 'malformed' | 'expired' | 'mismatch'; detail: string };

/** Checks format, time window and HMAC; the nonce's novelty is the caller's to check (it needs storage). */
export function verifySignature(header: string | undefined, secret: string, parts: SignedParts, nowSeconds: number): SignatureVerdict {
  if (header === undefined || header === '') return { ok: false, reason: 'missing', detail: 'no Coffer-Signature header' };
  const fields = new Map<string, string>();
  for (const item of header.split(',')) {
    const at = item.indexOf('=');
    if (at <= 0) return { ok: false, reason: 'malformed', detail: `"${item.slice(0, 40)}" is not key=value` };
    const name = item.slice(0, at).trim();
    if (fields.has(name)) return { ok: false, reason: 'malformed', detail: `${name} appears twice` };
    fields.set(name, item.slice(at + 1).trim());
  }
  const t = fields.get('t') ?? '';
  const nonce = fields.get('nonce') ?? '';
  if (fields.has('v1') && !fields.has('v2')) {
    return { ok: false, reason: 'malformed', detail: 'v1 signatures are no longer accepted: sign v2, which also covers the Content-Type, Idempotency-Key and Stripe-Version headers (see the README, "Signed requests")' };
  }
  const mac = fields.get('v2') ?? '';
  if (!/^\d{1,12}$/.test(t)) return { ok: false, reason: 'malformed', detail: 't must be a Unix time in seconds' };
  if (!noncePattern.test(nonce)) return { ok: false, reason: 'malformed', detail: 'nonce must be 16 to 64 characters of A-Z, a-z, 0-9, _ and -' };
  if (!/^[0-9a-f]{64}$/.test(mac)) return { ok: false, reason: 'malformed', detail: 'v2 must be 64 lowercase hex digits' };
  const timestamp = Number(t);
  if (Math.abs(nowSeconds - timestamp) > signatureToleranceSeconds) {
    return { ok: false, reason: 'expired', detail: `the timestamp is ${nowSeconds - timestamp} s from Coffer's clock; at most ${signatureToleranceSeconds} s is accepted` };
  }
  const expected = createHmac('sha256', secret).update(signedPayload(timestamp, nonce, parts)).digest();
  if (!timingSafeEqual(expected, Buffer.from(mac, 'hex'))) return { ok: false, reason: 'mismatch', detail: 'the signature does not match this request' };
  return { ok: true, nonce };
}
