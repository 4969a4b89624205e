import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import type { Clock } from '../../../platform/clock.ts';
import { randomBase62 } from '../../../platform/random.ts';
import type { Secret } from '../../../platform/secret.ts';
import { probeSignaturePrefix, signatureSkewSecondsMax } from '../wire.ts';

/**
 * WeChat Pay's side of API v3 authentication, written with node:crypto alone (not the SDK the connector uses), so
 * that the tests that run the official client against the sandbox check one implementation against another.
 *
 * A merchant signs `METHOD\n/path?query\ntimestamp\nnonce\nbody\n` with its API private key and names the key by
 * its certificate serial number; WeChat signs every answer and callback over `timestamp\nnonce\nbody\n` with its
 * own key, named by `Wechatpay-Serial` (here a WeChat Pay public key id, `PUB_KEY_ID_…`).
 */
const scheme = 'WECHATPAY2-SHA256-RSA2048';
const authorizationFields = ['mchid', 'serial_no', 'timestamp', 'nonce_str', 'signature'] as const;
type AuthorizationFields = Record<(typeof authorizationFields)[number], string>;

/** `WECHATPAY2-SHA256-RSA2048 mchid="…",serial_no="…",…` in any field order, each field exactly once. */
export function parseAuthorization(header: string | undefined): AuthorizationFields | null {
  if (header === undefined || !header.startsWith(`${scheme} `)) return null;
  const found = new Map<string, string>();
  for (const part of header.slice(scheme.length + 1).split(',')) {
    const match = /^\s*([a-z_]+)="([^"]*)"\s*$/.exec(part);
    if (match === null || found.has(match[1] ?? '')) return null;
    found.set(match[1] ?? '', match[2] ?? '');
  }
  const fields: Partial<AuthorizationFields> = {};
  for (const name of authorizationFields) {
    const value = found.get(name);
    if (value === undefined || value === '') return null;
    fields[name] = value;
  }
  return fields as AuthorizationFields;
}

export interface SignedRequest {
  method: string;
  /** The path and query exactly as the client sent them (the signature covers these bytes). */
  url: string;
  authorization: string | undefined;
  body: string;
}

export type RequestCheck = { ok: true; mchid: string } | { ok: false; reason: string };

export interface MerchantKey {
  mchid: string;
  serialNo: string;
  publicKey: KeyObject;
}

/** WeChat's check of a merchant's request: known key, recent timestamp, the merchant it claims, a valid signature. */
export function verifyMerchantRequest(request: SignedRequest, merchant: MerchantKey, nowSeconds: number): RequestCheck {
  const fields = parseAuthorization(request.authorization);
  if (fields === null) return { ok: false, reason: 'missing or malformed Authorization header' };
  if (fields.serial_no !== merchant.serialNo) return { ok: false, reason: `unknown merchant certificate serial ${fields.serial_no}` };
  if (fields.mchid !== merchant.mchid) return { ok: false, reason: `the key does not belong to merchant ${fields.mchid}` };
  if (!/^\d{1,12}$/.test(fields.timestamp)) return { ok: false, reason: 'timestamp is not a number of seconds' };
  if (Math.abs(nowSeconds - Number(fields.timestamp)) > signatureSkewSecondsMax) {
    return { ok: false, reason: 'timestamp is more than five minutes from WeChat Pay time' };
  }
  const message = `${request.method.toUpperCase()}\n${request.url}\n${fields.timestamp}\n${fields.nonce_str}\n${request.body}\n`;
  const valid = verify('sha256', Buffer.from(message, 'utf8'), merchant.publicKey, Buffer.from(fields.signature, 'base64'));
  return valid ? { ok: true, mchid: fields.mchid } : { ok: false, reason: 'signature verification failed' };
}

/** WeChat's nonces: 32 characters of [0-9A-Za-z]. */
export function weChatNonce(length = 32): string {
  return randomBase62(length);
}

/** Signs answers and callbacks as WeChat Pay does, with the platform private key named by its public key id. */
export class PlatformSigner {
  readonly #privateKey: KeyObject;
  readonly #keyId: string;
  readonly #clock: Clock;

  constructor(privateKeyPem: Secret<string>, keyId: string, clock: Clock) {
    this.#privateKey = createPrivateKey(privateKeyPem.reveal());
    this.#keyId = keyId;
    this.#clock = clock;
  }

  /** The `Wechatpay-*` headers for a body (an empty body signs as `ts\nnonce\n\n`). */
  headers(body: string, options: { probe?: boolean; corrupt?: boolean } = {}): Record<string, string> {
    const timestamp = String(Math.floor(this.#clock.nowMs() / 1000));
    const nonce = weChatNonce();
    let signature = sign('sha256', Buffer.from(`${timestamp}\n${nonce}\n${body}\n`, 'utf8'), this.#privateKey);
    if (options.corrupt === true) signature = Buffer.from(flipByte(signature, 0));
    const text = options.probe === true
      ? `${probeSignaturePrefix}${randomBytes(signature.length - 16).toString('base64')}`
      : signature.toString('base64');
    return {
      'Wechatpay-Timestamp': timestamp,
      'Wechatpay-Nonce': nonce,
      'Wechatpay-Signature': text,
      'Wechatpay-Serial': this.#keyId,
      'Wechatpay-Signature-Type': scheme,
    };
  }
}

export function merchantPublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

/** A copy of `bytes` with one bit of the byte at `index` (negative: from the end) flipped. */
export function flipByte(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  const at = index < 0 ? copy.length + index : index;
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}
