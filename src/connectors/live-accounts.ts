import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../platform/config-error.ts';

/**
 * The operator's own accounts at Alipay and WeChat Pay, for live mode. Each provider is configured all together
 * or not at all; its keys are read from files (never from the environment itself), which must be private.
 */
export interface AlipayLiveAccount {
  appId: string;
  appPrivateKeyPem: string;
  alipayPublicKeyPem: string;
  gateway: string;
}

export interface WeChatPayLiveAccount {
  mchid: string;
  appid: string;
  merchantSerialNo: string;
  merchantPrivateKeyPem: string;
  platformPublicKeyId: string;
  platformPublicKeyPem: string;
  apiV3Key: string;
  baseUrl: string;
  /**
   * The official account's app secret (COFFER_WECHAT_PAY_APP_SECRET_FILE, optional): with it, the hosted checkout
   * opened inside WeChat signs the shopper in (snsapi_base) and pays by JSAPI; without it, by QR code.
   */
  appSecret: string | undefined;
}

export interface LiveAccounts {
  alipay: AlipayLiveAccount | undefined;
  wechatPay: WeChatPayLiveAccount | undefined;
}

const alipayNames = ['COFFER_ALIPAY_APP_ID', 'COFFER_ALIPAY_PRIVATE_KEY_FILE', 'COFFER_ALIPAY_PUBLIC_KEY_FILE'] as const;
const wechatNames = [
  'COFFER_WECHAT_PAY_MCHID', 'COFFER_WECHAT_PAY_APPID', 'COFFER_WECHAT_PAY_SERIAL_NO', 'COFFER_WECHAT_PAY_PRIVATE_KEY_FILE',
  'COFFER_WECHAT_PAY_PUBLIC_KEY_ID', 'COFFER_WECHAT_PAY_PUBLIC_KEY_FILE', 'COFFER_WECHAT_PAY_APIV3_KEY_FILE',
] as const;

function readKeyFile(name: string, file: string, secret: boolean): string {
  let text: string;
  try {
    if (secret && (fs.statSync(file).mode & 0o077) !== 0) {
      throw new ConfigError(`${name}: ${file} can be read by group or others; chmod 600 it`);
    }
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (text === '') throw new ConfigError(`${name}: ${file} is empty`);
  return text;
}

function httpsUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be an https URL, got "${value}"`);
  }
  if (url.protocol !== 'https:') throw new ConfigError(`${name} must be an https URL, got "${value}"`);
  return value;
}

function allOrNone(env: NodeJS.ProcessEnv, names: readonly string[], provider: string): boolean {
  const set = names.filter((name) => (env[name] ?? '') !== '');
  if (set.length === 0) return false;
  if (set.length < names.length) {
    throw new ConfigError(`${provider} in live mode needs all of ${names.join(', ')}; missing ${names.filter((name) => !set.includes(name)).join(', ')}`);
  }
  return true;
}

export function readLiveAccounts(env: NodeJS.ProcessEnv, cwd: string): LiveAccounts {
  const file = (name: string) => path.resolve(cwd, env[name] ?? '');
  const alipay = allOrNone(env, alipayNames, 'Alipay')
    ? {
      appId: env.COFFER_ALIPAY_APP_ID ?? '',
      appPrivateKeyPem: readKeyFile('COFFER_ALIPAY_PRIVATE_KEY_FILE', file('COFFER_ALIPAY_PRIVATE_KEY_FILE'), true),
      alipayPublicKeyPem: readKeyFile('COFFER_ALIPAY_PUBLIC_KEY_FILE', file('COFFER_ALIPAY_PUBLIC_KEY_FILE'), false),
      gateway: httpsUrl('COFFER_ALIPAY_GATEWAY', env.COFFER_ALIPAY_GATEWAY || 'https://openapi.alipay.com/gateway.do'),
    }
    : undefined;
  let wechatPay: WeChatPayLiveAccount | undefined;
  if (allOrNone(env, wechatNames, 'WeChat Pay')) {
    const apiV3Key = readKeyFile('COFFER_WECHAT_PAY_APIV3_KEY_FILE', file('COFFER_WECHAT_PAY_APIV3_KEY_FILE'), true);
    if (!/^[\x21-\x7e]{32}$/.test(apiV3Key)) throw new ConfigError('COFFER_WECHAT_PAY_APIV3_KEY_FILE must hold the 32-character APIv3 key');
    wechatPay = {
      mchid: env.COFFER_WECHAT_PAY_MCHID ?? '',
      appid: env.COFFER_WECHAT_PAY_APPID ?? '',
      merchantSerialNo: env.COFFER_WECHAT_PAY_SERIAL_NO ?? '',
      merchantPrivateKeyPem: readKeyFile('COFFER_WECHAT_PAY_PRIVATE_KEY_FILE', file('COFFER_WECHAT_PAY_PRIVATE_KEY_FILE'), true),
      platformPublicKeyId: env.COFFER_WECHAT_PAY_PUBLIC_KEY_ID ?? '',
      platformPublicKeyPem: readKeyFile('COFFER_WECHAT_PAY_PUBLIC_KEY_FILE', file('COFFER_WECHAT_PAY_PUBLIC_KEY_FILE'), false),
      apiV3Key,
      baseUrl: httpsUrl('COFFER_WECHAT_PAY_BASE_URL', env.COFFER_WECHAT_PAY_BASE_URL || 'https://api.mch.weixin.qq.com/'),
      appSecret: env.COFFER_WECHAT_PAY_APP_SECRET_FILE ? readKeyFile('COFFER_WECHAT_PAY_APP_SECRET_FILE', file('COFFER_WECHAT_PAY_APP_SECRET_FILE'), true) : undefined,
    };
  }
  return { alipay, wechatPay };
}
