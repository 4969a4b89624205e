import { createSign, createVerify } from 'node:crypto';

/**
 * Alipay's wire conventions as the provider applies them: Beijing-time timestamps, yuan amounts with at most two
 * decimals, and RSA2 (RSA-SHA256, PKCS#1 v1.5, base64) over `k=v&k=v` strings. The sandbox computes in fen
 * (bigint) and writes yuan only at its edge; Coffer's own conversions live in the connector's transformers.
 */

const beijingOffsetMs = 8 * 3_600_000;

/** How Alipay writes an instant: `yyyy-MM-dd HH:mm:ss`, Beijing time (GMT+8). */
export function alipayTime(ms: number): string {
  return new Date(ms + beijingOffsetMs).toISOString().slice(0, 19).replace('T', ' ');
}

/** With milliseconds, as Alipay writes `gmt_refund` in notifications (`2015-04-28 15:45:57.320`). */
export function alipayTimeWithMs(ms: number): string {
  return new Date(ms + beijingOffsetMs).toISOString().slice(0, 23).replace('T', ' ');
}

const timePattern = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** The instant a `yyyy-MM-dd HH:mm:ss` Beijing time names, or undefined if it is not one (wrong shape, 02-30). */
export function parseAlipayTime(text: string): number | undefined {
  const match = timePattern.exec(text);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 02-30 over to March: a date that does not round-trip is not a date.
  if (alipayTime(ms - beijingOffsetMs) !== text) return undefined;
  return ms - beijingOffsetMs;
}

/** Alipay's amount range: 0.01 to 100000000 yuan. */
const centsMax = 100_000_000n * 100n;
const yuanPattern = /^(0|[1-9]\d{0,8})(\.\d{1,2})?$/;

/**
 * Fen from a yuan amount as a merchant may send it: a string (`"12.34"`, `"12.3"`, `"12"`) or a JSON number that
 * prints as one. Undefined when it is not a valid amount (more decimals, exponent, sign, out of range).
 */
export function parseYuan(value: unknown): bigint | undefined {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  if (typeof text !== 'string') return undefined;
  const match = yuanPattern.exec(text);
  if (match === null) return undefined;
  const fraction = (match[2] ?? '.').slice(1).padEnd(2, '0');
  const cents = BigInt(match[1] ?? '0') * 100n + BigInt(fraction);
  return cents >= 1n && cents <= centsMax ? cents : undefined;
}

/** Yuan with exactly two decimals, as Alipay writes every amount it sends. */
export function formatYuan(cents: bigint): string {
  const whole = cents / 100n;
  const fraction = (cents % 100n).toString().padStart(2, '0');
  return `${whole}.${fraction}`;
}

/**
 * The string Alipay signs for a set of parameters: every parameter but the excluded ones, empty values dropped,
 * sorted by key (code unit order), joined as `k=v&k=v` with the raw values (not URL-encoded).
 */
export function signContent(params: ReadonlyMap<string, string> | Record<string, string>, excluded: readonly string[]): string {
  const entries = params instanceof Map ? [...params.entries()] : Object.entries(params);
  return entries
    .filter(([key, value]) => !excluded.includes(key) && value !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

export function rsa2Sign(content: string, privateKeyPem: string): string {
  return createSign('RSA-SHA256').update(content, 'utf8').sign(privateKeyPem, 'base64');
}

/** False for a wrong signature and for one that is not even base64 of the right length: never throws on input. */
export function rsa2Verify(content: string, signature: string, publicKeyPem: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  try {
    return createVerify('RSA-SHA256').update(content, 'utf8').verify(publicKeyPem, signature, 'base64');
  } catch {
    return false;
  }
}
