import { parseAlipayTime, rsa2Verify, signContent } from './wire-format.ts';

/**
 * The first half of Alipay's gateway: what a request to `gateway.do` must be before any method runs. The common
 * parameters arrive in the query string and `biz_content` in the form body (as alipay-sdk sends them), or all in
 * the query string (a page URL made by `pageExecute(..., 'GET', ...)`); they are merged, then checked in Alipay's
 * order: method, app, signature parameters, timestamp, version and charset, the RSA2 signature with the app's
 * public key, and finally `biz_content` as a JSON object. Pure: no clock, no database.
 */

/** An answer that is not the method's own: the envelope's `code`, `msg`, `sub_code` and `sub_msg`. */
export interface Refusal {
  code: '20000' | '40001' | '40002' | '40004';
  msg: string;
  sub_code: string;
  sub_msg: string;
}

const messages = {
  '20000': 'Service Currently Unavailable',
  '40001': 'Missing Required Arguments',
  '40002': 'Invalid Arguments',
  '40004': 'Business Failed',
} as const;

export function refusal(code: Refusal['code'], subCode: string, subMsg: string): Refusal {
  return { code, msg: messages[code], sub_code: subCode, sub_msg: subMsg };
}

export function isRefusal(value: object): value is Refusal {
  return 'sub_code' in value;
}

/** A business failure (`40004` with an `ACQ.*` code). */
export function businessFailure(subCode: string, subMsg: string): Refusal {
  return refusal('40004', subCode, subMsg);
}

export function invalidParameter(subMsg: string): Refusal {
  return businessFailure('ACQ.INVALID_PARAMETER', subMsg);
}

export const gatewayMethods = [
  'alipay.trade.precreate',
  'alipay.trade.page.pay',
  'alipay.trade.query',
  'alipay.trade.refund',
  'alipay.trade.fastpay.refund.query',
  'alipay.trade.close',
] as const;
export type GatewayMethod = (typeof gatewayMethods)[number];

export interface VerifiedRequest {
  method: GatewayMethod;
  appId: string;
  notifyUrl: string | null;
  returnUrl: string | null;
  biz: Record<string, unknown>;
}

export type ParsedRequest =
  /** `method` is known once the method parameter is: the answer goes under its `*_response` key. */
  | { ok: true; request: VerifiedRequest }
  | { ok: false; method: GatewayMethod | null; refusal: Refusal };

/** The app the sandbox knows: requests must be signed with the private key of this public key. */
export interface SandboxApp {
  appId: string;
  appPublicKeyPem: string;
}

/** More parameters than any request of these methods carries is refused rather than sorted and verified. */
const parametersMax = 64;

/** All parameters of the query string and the body, each once; undefined when a name repeats or they are too many. */
export function mergeParameters(query: string, body: string): Map<string, string> | undefined {
  const merged = new Map<string, string>();
  for (const source of [query, body]) {
    for (const [key, value] of new URLSearchParams(source)) {
      if (merged.has(key) || merged.size >= parametersMax) return undefined;
      merged.set(key, value);
    }
  }
  return merged;
}

function isGatewayMethod(value: string): value is GatewayMethod {
  return (gatewayMethods as readonly string[]).includes(value);
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && value.length <= 256;
  } catch {
    return false;
  }
}

/** Checks one request against the app and returns its verified parts, or the refusal Alipay would answer. */
export function parseGatewayRequest(params: Map<string, string> | undefined, app: SandboxApp): ParsedRequest {
  if (params === undefined) return { ok: false, method: null, refusal: refusal('40002', 'isv.invalid-parameter', '参数重复或过多') };
  const methodName = params.get('method');
  if (methodName === undefined || methodName === '') return { ok: false, method: null, refusal: refusal('40001', 'isv.missing-method', '缺少方法名参数') };
  if (!isGatewayMethod(methodName)) return { ok: false, method: null, refusal: refusal('40002', 'isv.invalid-method', '不存在的方法名') };
  const refused = checkCommonParameters(params, app);
  if (refused !== undefined) return { ok: false, method: methodName, refusal: refused };
  const notifyUrl = params.get('notify_url') || null;
  const returnUrl = params.get('return_url') || null;
  for (const [name, url] of [['notify_url', notifyUrl], ['return_url', returnUrl]] as const) {
    if (url !== null && !isHttpUrl(url)) return { ok: false, method: methodName, refusal: refusal('40002', `isv.invalid-${name.replace('_', '-')}`, `${name} 不是合法的 http(s) 地址`) };
  }
  let biz: unknown;
  try {
    biz = JSON.parse(params.get('biz_content') ?? '');
  } catch {
    return { ok: false, method: methodName, refusal: invalidParameter('biz_content 不是合法的 JSON') };
  }
  if (typeof biz !== 'object' || biz === null || Array.isArray(biz)) {
    return { ok: false, method: methodName, refusal: invalidParameter('biz_content 必须是 JSON 对象') };
  }
  return { ok: true, request: { method: methodName, appId: app.appId, notifyUrl, returnUrl, biz: biz as Record<string, unknown> } };
}

function checkCommonParameters(params: Map<string, string>, app: SandboxApp): Refusal | undefined {
  const required = [
    ['app_id', 'isv.missing-app-id', '缺少AppID参数'],
    ['sign_type', 'isv.missing-signature-type', '缺少签名类型参数'],
    ['sign', 'isv.missing-signature', '缺少签名参数'],
    ['timestamp', 'isv.missing-timestamp', '缺少时间戳参数'],
    ['version', 'isv.missing-version', '缺少版本参数'],
    ['charset', 'isv.missing-charset', '缺少编码参数'],
  ] as const;
  for (const [name, subCode, subMsg] of required) {
    if ((params.get(name) ?? '') === '') return refusal('40001', subCode, subMsg);
  }
  if (params.get('app_id') !== app.appId) return refusal('40002', 'isv.invalid-app-id', '无效的AppID参数');
  if (params.get('sign_type') !== 'RSA2') return refusal('40002', 'isv.invalid-signature-type', '无效的签名类型参数 (沙箱只支持 RSA2)');
  if (parseAlipayTime(params.get('timestamp') ?? '') === undefined) {
    return refusal('40002', 'isv.invalid-timestamp', '非法的时间戳参数 (格式 yyyy-MM-dd HH:mm:ss)');
  }
  if (params.get('version') !== '1.0') return refusal('40002', 'isv.invalid-version', '版本号必须为 1.0');
  if (params.get('charset')?.toLowerCase() !== 'utf-8') return refusal('40002', 'isv.invalid-charset', '字符集错误 (沙箱只支持 utf-8)');
  const format = params.get('format');
  if (format !== undefined && format !== '' && format.toUpperCase() !== 'JSON') return refusal('40002', 'isv.invalid-format', '参数格式错误');
  const content = signContent(params, ['sign']);
  if (!rsa2Verify(content, params.get('sign') ?? '', app.appPublicKeyPem)) {
    return refusal('40002', 'isv.invalid-signature', `验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：${content}`);
  }
  return undefined;
}
