import type { GatewayMethod } from './gateway-request.ts';
import { rsa2Sign } from './wire-format.ts';

/** The key an answer goes under: `alipay.trade.query` answers in `alipay_trade_query_response`. */
export function responseKey(method: GatewayMethod | null): string {
  return method === null ? 'error_response' : `${method.replaceAll('.', '_')}_response`;
}

/**
 * Alipay's answer envelope, `{"<key>":{…},"sign":"…"}`, where the signature is RSA2 over the exact text of the
 * inner object as sent: the text is built once, signed, and embedded as it is. Like Alipay, slashes are written
 * escaped (`https:\/\/…`), so a client that re-serializes the parsed object instead of verifying the bytes it
 * received fails here as it would in production.
 */
export function signedEnvelope(key: string, fields: Record<string, string>, alipayPrivateKeyPem: string): string {
  const text = JSON.stringify(fields).replaceAll('/', '\\/');
  return `{"${key}":${text},"sign":"${rsa2Sign(text, alipayPrivateKeyPem)}"}`;
}
