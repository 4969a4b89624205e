import { createHmac, timingSafeEqual } from 'node:crypto';
import https from 'node:https';
import type { Kysely } from 'kysely';
import { Agent as UndiciAgent } from 'urllib';
import { CofferError } from '../domain/errors.ts';
import type { Logger } from '../platform/logger.ts';
import type { Database } from '../store/database.ts';
import type { CommitDurability } from '../store/commit-durability.ts';
import type { Clock } from '../platform/clock.ts';
import type { Secret } from '../platform/secret.ts';
import { AlipayConnector } from './alipay/client.ts';
import { AlipaySandbox } from './alipay/sandbox/alipay-sandbox.ts';
import { generateAlipaySandboxCredentials, generateAlipaySandboxCredentialsInBackground, type AlipaySandboxCredentials } from './alipay/sandbox/credentials.ts';
import { CardConnector } from './card/client.ts';
import { CardAcquirerSandbox } from './card/sandbox/acquirer.ts';
import { flowNotSupported, type Connector, type ConnectorRegistry, type PublicEndpoint, type WalletProvider } from './connector.ts';
import type { FastifyInstance } from 'fastify';
import { registerAlipaySandbox } from './alipay/sandbox/register-alipay-sandbox.ts';
import { registerWeChatPaySandbox } from './wechat-pay/sandbox/register-wechat-pay-sandbox.ts';
import { registerCardAcsSandbox } from './card/sandbox/acs.ts';
import { httpNotificationSender } from './notification-sender.ts';
import { loadSandboxAccounts, prepareSandboxAccounts } from './sandbox-accounts.ts';
import type { WalletConnector } from './wallet.ts';
import type { LiveAccounts } from './live-accounts.ts';
import { WeChatPayConnector } from './wechat-pay/client.ts';
import { sandboxAppSecret, WeChatOAuth, weChatAccessTokenUrl, weChatAuthorizeUrl } from './wechat-pay/oauth.ts';
import { WeChatPaySandbox } from './wechat-pay/sandbox/wechat-pay-sandbox.ts';
import { generateWeChatPaySandboxCredentials, generateWeChatPaySandboxCredentialsInBackground } from './wechat-pay/sandbox/sandbox-credentials.ts';

/**
 * Test mode talks to the sandboxes; live mode to the providers the operator configured (Alipay and WeChat Pay
 * through `COFFER_ALIPAY_*` and `COFFER_WECHAT_PAY_*`). Live card acquiring is not configurable in this version,
 * and a provider without an account refuses live attempts with `flow_not_supported`.
 */
export interface RegistryOptions {
  durability: CommitDurability;
  clock: Clock;
  /** Shared by the sandboxes, which sign their notifications, and the test-mode connectors, which verify them. */
  sandboxNotificationSecret: Secret<string>;
  /** Keys the links that bring a shopper back from 3-D Secure (they lead to the PaymentIntent's client secret). */
  returnLinkKey: Secret<Buffer>;
  /** Where the sandboxes keep their accounts' keys (`keys/sandbox-<provider>.json`). */
  homeDir: string | undefined;
  /** The operator's accounts at the providers, for live mode; a provider without one refuses live payments. */
  liveAccounts?: LiveAccounts | undefined;
  /** Serve the sandboxes' fault controls (`/sandbox/<provider>/control`), for a test environment. */
  sandboxControls?: boolean | undefined;
  timeoutMs?: number | undefined;
}

type WeChatPayAccounts = ReturnType<typeof generateWeChatPaySandboxCredentials>;

/** Makes the wallet sandboxes' accounts missing from `homeDir` (a first start), off the main thread. */
/** The wallet sandboxes' accounts a first start needs, made in the background; `keep` writes them to the home. */
export async function prepareSandboxKeys(homeDir: string): Promise<() => void> {
  const keeps = await Promise.all([
    prepareSandboxAccounts(homeDir, 'alipay', generateAlipaySandboxCredentialsInBackground),
    prepareSandboxAccounts(homeDir, 'wechat-pay', generateWeChatPaySandboxCredentialsInBackground),
  ]);
  return () => {
    for (const keep of keeps) keep();
  };
}

export function createConnectorRegistry(db: Kysely<Database>, logger: Logger, options: RegistryOptions): ConnectorRegistry {
  let endpoint: PublicEndpoint | undefined;
  const publicUrl = (): string => {
    if (endpoint === undefined) throw new CofferError('service_unavailable', 'Coffer is starting: its public listener is not up yet.', { retryAfterSeconds: 1 });
    return endpoint.url;
  };
  const sandbox = new CardAcquirerSandbox(db, {
    durability: options.durability,
    clock: options.clock,
    notificationSecret: options.sandboxNotificationSecret,
    acsBaseUrl: () => `${publicUrl()}/sandbox/card/acs`,
  });
  const testCard = new CardConnector(sandbox, logger.child({ connector: 'card', livemode: false }), {
    notificationSecret: options.sandboxNotificationSecret,
    clock: options.clock,
    timeoutMs: options.timeoutMs,
  });
  const send = httpNotificationSender({ ca: () => endpoint?.ca, timeoutMs: 10_000 });
  const alipayAccounts = loadSandboxAccounts<AlipaySandboxCredentials>(options.homeDir, 'alipay', generateAlipaySandboxCredentials);
  const wechatAccounts = loadSandboxAccounts<WeChatPayAccounts>(options.homeDir, 'wechat-pay', generateWeChatPaySandboxCredentials);
  const alipaySandbox = new AlipaySandbox({
    db,
    clock: options.clock,
    credentials: alipayAccounts,
    cashierBaseUrl: () => `${publicUrl()}/sandbox/alipay`,
    send,
  });
  const wechatSandbox = new WeChatPaySandbox({
    db,
    clock: options.clock,
    credentials: wechatAccounts,
    scanBaseUrl: () => `${publicUrl()}/sandbox/wechat-pay`,
    send,
  });
  const testWallets = new Map<WalletProvider, WalletConnector>();
  const testWallet = (provider: WalletProvider): WalletConnector => {
    const known = testWallets.get(provider);
    if (known !== undefined) return known;
    const base = publicUrl();
    const ca = endpoint?.ca;
    const walletLogger = logger.child({ connector: provider, livemode: false });
    const made: WalletConnector = provider === 'alipay'
      ? new AlipayConnector({
        appId: alipayAccounts.appId,
        appPrivateKeyPem: alipayAccounts.appPrivateKeyPem,
        alipayPublicKeyPem: alipayAccounts.alipayPublicKeyPem,
        gateway: `${base}/sandbox/alipay/gateway.do`,
        proxyAgent: ca === undefined ? undefined : new UndiciAgent({ connect: { ca } }),
        timeoutMs: options.timeoutMs,
        logger: walletLogger,
      })
      : new WeChatPayConnector({
        mchid: wechatAccounts.mchid,
        appid: wechatAccounts.appid,
        merchantSerialNo: wechatAccounts.merchantSerialNo,
        merchantPrivateKeyPem: wechatAccounts.merchantPrivateKeyPem,
        platformPublicKeyId: wechatAccounts.platformPublicKeyId,
        platformPublicKeyPem: wechatAccounts.platformPublicKeyPem,
        apiV3Key: wechatAccounts.apiV3Key,
        baseUrl: `${base}/sandbox/wechat-pay/`,
        clock: options.clock,
        logger: walletLogger,
        timeoutMs: options.timeoutMs,
        httpsAgent: ca === undefined ? undefined : new https.Agent({ ca, keepAlive: true }),
        refundNotifyUrl: `${base}/hooks/wechat_pay/test`,
      });
    testWallets.set(provider, made);
    return made;
  };
  const liveWallets = new Map<WalletProvider, WalletConnector>();
  const liveWallet = (provider: WalletProvider): WalletConnector => {
    const known = liveWallets.get(provider);
    if (known !== undefined) return known;
    const walletLogger = logger.child({ connector: provider, livemode: true });
    const alipay = options.liveAccounts?.alipay;
    const wechat = options.liveAccounts?.wechatPay;
    let made: WalletConnector;
    if (provider === 'alipay') {
      if (alipay === undefined) throw flowNotSupported('live alipay', 'payments until the operator configures its account (COFFER_ALIPAY_*)');
      made = new AlipayConnector({ ...alipay, timeoutMs: options.timeoutMs, logger: walletLogger });
    } else {
      if (wechat === undefined) throw flowNotSupported('live wechat_pay', 'payments until the operator configures its account (COFFER_WECHAT_PAY_*)');
      made = new WeChatPayConnector({
        ...wechat, clock: options.clock, logger: walletLogger, timeoutMs: options.timeoutMs, refundNotifyUrl: `${publicUrl()}/hooks/wechat_pay/live`,
      });
    }
    liveWallets.set(provider, made);
    return made;
  };
  let testSignIn: WeChatOAuth | undefined;
  let liveSignIn: WeChatOAuth | undefined;
  const returnSignature = (chargeId: string): string =>
    createHmac('sha256', options.returnLinkKey.reveal()).update(`3ds-return ${chargeId}`).digest('base64url').slice(0, 32);
  return {
    sandboxes: { card: sandbox, wallets: { alipay: alipaySandbox, wechat_pay: wechatSandbox } },
    setPublicEndpoint(listening: PublicEndpoint): void {
      endpoint = listening;
    },
    publicUrl,
    registerSandboxRoutes(app: FastifyInstance): void {
      registerCardAcsSandbox(app, sandbox);
      // The fault controls change every merchant's test mode on this instance: off unless the operator enables them.
      registerAlipaySandbox(app, alipaySandbox, { controls: options.sandboxControls === true });
      registerWeChatPaySandbox(app, wechatSandbox, { controls: options.sandboxControls === true });
    },
    card(livemode: boolean): Connector {
      if (livemode) throw flowNotSupported('live card', 'payments until an acquirer is configured');
      return testCard;
    },
    wallet(provider: WalletProvider, livemode: boolean): WalletConnector {
      return livemode ? liveWallet(provider) : testWallet(provider);
    },
    wechatSignIn(livemode: boolean): WeChatOAuth | undefined {
      if (!livemode) {
        testSignIn ??= new WeChatOAuth({
          appid: wechatAccounts.appid, appSecret: sandboxAppSecret(wechatAccounts.apiV3Key), timeoutMs: options.timeoutMs, ca: endpoint?.ca,
          authorizeUrl: `${publicUrl()}/sandbox/wechat-pay/connect/oauth2/authorize`, accessTokenUrl: `${publicUrl()}/sandbox/wechat-pay/sns/oauth2/access_token`,
        });
        return testSignIn;
      }
      const wechat = options.liveAccounts?.wechatPay;
      if (wechat?.appSecret === undefined) return undefined;
      liveSignIn ??= new WeChatOAuth({
        appid: wechat.appid, appSecret: wechat.appSecret, timeoutMs: options.timeoutMs, authorizeUrl: weChatAuthorizeUrl, accessTokenUrl: weChatAccessTokenUrl,
      });
      return liveSignIn;
    },
    notificationUrl(provider: WalletProvider, livemode: boolean): string {
      return `${publicUrl()}/hooks/${provider}/${livemode ? 'live' : 'test'}`;
    },
    paymentReturnUrl(chargeId: string): string {
      return `${publicUrl()}/hooks/return/${chargeId}?sig=${returnSignature(chargeId)}`;
    },
    verifyPaymentReturn(chargeId: string, sig: string): boolean {
      const expected = Buffer.from(returnSignature(chargeId));
      const given = Buffer.from(sig);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
