import { randomBytes } from 'node:crypto';
import type { Clock } from '../../../platform/clock.ts';
import { sameSecretText, Secret } from '../../../platform/secret.ts';
import { sandboxAppSecret } from '../oauth.ts';

/**
 * WeChat's web sign-in (snsapi_base) as the sandbox plays it: the authorize page sends the browser straight back
 * with a one-time code (five minutes), and the access-token endpoint trades a code, with the app id and secret,
 * for the shopper's openid. The sandbox's shopper is one per browser sign-in: each authorization makes a new
 * openid (WeChat's are stable per user and app; nothing in Coffer relies on seeing the same one twice).
 */
export class SandboxSignIn {
  readonly #appid: string;
  readonly #appSecret: Secret<string>;
  readonly #clock: Clock;
  readonly #codes = new Map<string, { openid: string; expiresAtMs: number }>();
  readonly #registeredOrigin: () => string;

  /** `registeredOrigin`: the one web origin the app may send shoppers back to (Coffer's public URL's). */
  constructor(appid: string, apiV3Key: string, clock: Clock, registeredOrigin: () => string) {
    this.#appid = appid;
    this.#registeredOrigin = registeredOrigin;
    this.#appSecret = new Secret(sandboxAppSecret(apiV3Key));
    this.#clock = clock;
  }

  /**
   * The authorize page: where the browser goes next, or why not. As at WeChat, only a redirect URI on the domain
   * registered for the app is followed (WeChat's error 10003 otherwise), so the page redirects nowhere else.
   */
  authorize(query: Record<string, string | undefined>): { ok: true; location: string } | { ok: false; message: string } {
    if (query.appid !== this.#appid) return { ok: false, message: 'appid is not the app bound to the merchant.' };
    if (query.response_type !== 'code') return { ok: false, message: 'response_type must be code.' };
    if (query.scope !== 'snsapi_base' && query.scope !== 'snsapi_userinfo') return { ok: false, message: 'scope must be snsapi_base or snsapi_userinfo.' };
    let target: URL;
    try {
      target = new URL(query.redirect_uri ?? '');
    } catch {
      return { ok: false, message: 'redirect_uri is not a URL.' };
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') return { ok: false, message: 'redirect_uri must be an http or https URL.' };
    if (target.origin !== this.#registeredOrigin()) {
      return { ok: false, message: `redirect_uri is not on the domain registered for this app (${this.#registeredOrigin()}): error 10003.` };
    }
    this.#reap();
    const code = randomBytes(24).toString('base64url');
    this.#codes.set(code, { openid: `o${randomBytes(20).toString('base64url')}`, expiresAtMs: this.#clock.nowMs() + 5 * 60_000 });
    target.searchParams.set('code', code);
    target.searchParams.set('state', query.state ?? '');
    return { ok: true, location: target.toString() };
  }

  /** The access-token endpoint's JSON answer: WeChat's `errcode` on a refusal. A code is good once. */
  accessToken(query: Record<string, string | undefined>): Record<string, unknown> {
    if (query.appid !== this.#appid || !sameSecretText(query.secret ?? '', this.#appSecret.reveal())) {
      return { errcode: 40125, errmsg: 'invalid appsecret' };
    }
    if (query.grant_type !== 'authorization_code') return { errcode: 40002, errmsg: 'invalid grant_type' };
    const entry = this.#codes.get(query.code ?? '');
    this.#codes.delete(query.code ?? '');
    if (entry === undefined || entry.expiresAtMs <= this.#clock.nowMs()) return { errcode: 40029, errmsg: 'invalid code' };
    return { access_token: randomBytes(32).toString('base64url'), expires_in: 7200, refresh_token: randomBytes(32).toString('base64url'), openid: entry.openid, scope: 'snsapi_base' };
  }

  #reap(): void {
    const now = this.#clock.nowMs();
    for (const [code, entry] of this.#codes) if (entry.expiresAtMs <= now) this.#codes.delete(code);
    // Bounded: a flood of authorizations cannot grow the map without end.
    while (this.#codes.size > 10_000) this.#codes.delete(this.#codes.keys().next().value as string);
  }
}
