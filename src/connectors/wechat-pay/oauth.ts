import { createHmac } from 'node:crypto';
import https from 'node:https';
import { limits } from '../../limits.ts';
import { Secret } from '../../platform/secret.ts';

/**
 * WeChat's web sign-in for official accounts (网页授权, scope `snsapi_base`): the way a page opened inside
 * WeChat's browser learns the shopper's `openid` for the merchant's app, which a JSAPI payment needs. The
 * shopper's browser goes to WeChat's authorize page, which sends it straight back (no prompt for this scope) with
 * a one-time `code`; the server trades the code, with the app secret, for the openid. Test mode points both URLs
 * at the WeChat Pay sandbox.
 */
export interface WeChatOAuthOptions {
  appid: string;
  appSecret: string;
  /** `https://open.weixin.qq.com/connect/oauth2/authorize`, or the sandbox's. */
  authorizeUrl: string;
  /** `https://api.weixin.qq.com/sns/oauth2/access_token`, or the sandbox's. */
  accessTokenUrl: string;
  timeoutMs?: number | undefined;
  /** For the sandbox over TLS: Coffer's own certificate. */
  ca?: string | undefined;
}

export const weChatAuthorizeUrl = 'https://open.weixin.qq.com/connect/oauth2/authorize';
export const weChatAccessTokenUrl = 'https://api.weixin.qq.com/sns/oauth2/access_token';

/** The sandbox's app secret: derived from its APIv3 key, so that sandbox accounts kept from before need nothing new. */
export function sandboxAppSecret(apiV3Key: string): string {
  return createHmac('sha256', apiV3Key).update('wechat oauth app secret').digest('hex').slice(0, 32);
}

export class WeChatOAuth {
  readonly #appid: string;
  readonly #appSecret: Secret<string>;
  readonly #authorizeUrl: string;
  readonly #accessTokenUrl: string;
  readonly #timeoutMs: number;
  readonly #ca: string | undefined;

  constructor(options: WeChatOAuthOptions) {
    this.#appid = options.appid;
    this.#appSecret = new Secret(options.appSecret);
    this.#authorizeUrl = options.authorizeUrl;
    this.#accessTokenUrl = options.accessTokenUrl;
    this.#timeoutMs = options.timeoutMs ?? limits.providerCallTimeoutMs;
    this.#ca = options.ca;
  }

  /** Where to send the shopper's browser; WeChat comes back to `redirectUri` with `code` and `state`. */
  authorizeUrl(redirectUri: string, state: string): string {
    const url = new URL(this.#authorizeUrl);
    url.searchParams.set('appid', this.#appid);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', 'snsapi_base');
    url.searchParams.set('state', state);
    url.hash = 'wechat_redirect';
    return url.toString();
  }

  /** Trades a code for the shopper's openid; a refusal, a failure or an answer not understood is an error. */
  async openidFor(code: string): Promise<{ openid: string } | { error: string }> {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(code)) return { error: 'the code is not well-formed' };
    const url = new URL(this.#accessTokenUrl);
    url.searchParams.set('appid', this.#appid);
    url.searchParams.set('secret', this.#appSecret.reveal());
    url.searchParams.set('code', code);
    url.searchParams.set('grant_type', 'authorization_code');
    let body: string;
    try {
      body = await this.#get(url);
    } catch (error) {
      return { error: error instanceof Error ? error.message : 'the request failed' };
    }
    let answer: { openid?: unknown; errcode?: unknown; errmsg?: unknown };
    try {
      answer = JSON.parse(body) as typeof answer;
    } catch {
      return { error: 'the answer is not JSON' };
    }
    if (typeof answer.openid === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(answer.openid)) return { openid: answer.openid };
    return { error: `WeChat refused the code: ${String(answer.errcode ?? '?')} ${String(answer.errmsg ?? '')}`.trim() };
  }

  #get(url: URL): Promise<string> {
    return new Promise((resolve, reject) => {
      const request = https.get(url, { timeout: this.#timeoutMs, ...(this.#ca === undefined ? {} : { ca: this.#ca }) }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 64 * 1024) request.destroy(new Error('the answer is too large'));
          else chunks.push(chunk);
        });
        response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`WeChat answered ${response.statusCode ?? '?'}`))));
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(new Error('WeChat did not answer in time')));
      request.on('error', reject);
    });
  }
}
