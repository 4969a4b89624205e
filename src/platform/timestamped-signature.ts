import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Stripe's signature scheme, used for Coffer's outgoing webhooks and for the notifications its sandboxes send:
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, with one `v1` per secret while a secret is being
 * rolled. A verifier accepts any matching `v1` within the tolerance and compares in constant time.
 */
export function signatureHeader(secrets: readonly string[], body: string, timestampSeconds: number): string {
  const signatures = secrets.map((secret) => `v1=${hmacHex(secret, `${timestampSeconds}.${body}`)}`);
  return [`t=${timestampSeconds}`, ...signatures].join(',');
}

function hmacHex(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message, 'utf8').digest('hex');
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export function verifySignatureHeader(
  secret: string,
  body: string,
  header: string | undefined,
  nowSeconds: number,
  toleranceSeconds: number,
): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'no signature' };
  let timestamp: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const [name, value] = part.split('=', 2);
    if (name === 't' && value !== undefined && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    if (name === 'v1' && value !== undefined) candidates.push(value);
  }
  if (timestamp === undefined) return { ok: false, reason: 'no timestamp' };
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: 'timestamp outside the tolerance' };
  const expected = Buffer.from(hmacHex(secret, `${timestamp}.${body}`), 'hex');
  for (const candidate of candidates) {
    const given = Buffer.from(candidate, 'hex');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: 'no matching signature' };
}
