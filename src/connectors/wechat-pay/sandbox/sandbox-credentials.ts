import { randomBytes } from 'node:crypto';
import { rsaKeyPair, rsaKeyPairInBackground, type KeyPairPem } from '../../sandbox-rsa.ts';
import { randomBase62, randomDigits } from '../../../platform/random.ts';

/**
 * Everything both halves of the WeChat Pay wire need in test mode, as WeChat's merchant platform hands it out:
 * the merchant's API key pair (WeChat keeps the public half, known by the certificate serial number), the WeChat
 * Pay public key pair in "public key mode" (the merchant keeps the public half, known by its `PUB_KEY_ID_…`),
 * and the APIv3 key that encrypts callbacks. Plain strings, so that the set can be kept as JSON with the
 * instance's other keys (see sandbox-accounts.ts); the sandbox and the connector wrap the secret parts in `Secret`.
 */
export interface WeChatPaySandboxCredentialSet {
  /** WeChat's merchant id (商户号), ten digits. */
  mchid: string;
  /** The app id bound to the merchant (`wx` and 16 hex digits). */
  appid: string;
  /** The serial number of the merchant's API certificate: names the merchant key in `Authorization`. */
  merchantSerialNo: string;
  merchantPrivateKeyPem: string;
  merchantPublicKeyPem: string;
  /** Names WeChat Pay's key in `Wechatpay-Serial`. */
  platformPublicKeyId: string;
  platformPrivateKeyPem: string;
  platformPublicKeyPem: string;
  /** 32 ASCII characters: the AES-256 key of callback resources. */
  apiV3Key: string;
}

/**
 * New test credentials. The sandbox and the connector must be given the same set, and it should be kept (with
 * the instance's other secrets) rather than made at every start: callbacks already queued are encrypted and
 * signed with it.
 */
export function generateWeChatPaySandboxCredentials(): WeChatPaySandboxCredentialSet {
  return credentialSet(rsaKeyPair('pkcs8'), rsaKeyPair('pkcs8'));
}

/** The same, its two RSA key pairs made side by side on libuv's thread pool rather than on the caller's thread. */
export async function generateWeChatPaySandboxCredentialsInBackground(): Promise<WeChatPaySandboxCredentialSet> {
  const [merchant, platform] = await Promise.all([rsaKeyPairInBackground('pkcs8'), rsaKeyPairInBackground('pkcs8')]);
  return credentialSet(merchant, platform);
}

function credentialSet(merchant: KeyPairPem, platform: KeyPairPem): WeChatPaySandboxCredentialSet {
  return {
    mchid: `19${randomDigits(8)}`,
    appid: `wx${randomBytes(8).toString('hex')}`,
    merchantSerialNo: randomBytes(20).toString('hex').toUpperCase(),
    merchantPrivateKeyPem: merchant.privateKeyPem,
    merchantPublicKeyPem: merchant.publicKeyPem,
    platformPublicKeyId: `PUB_KEY_ID_01${randomDigits(30)}`,
    platformPrivateKeyPem: platform.privateKeyPem,
    platformPublicKeyPem: platform.publicKeyPem,
    apiV3Key: randomBase62(32),
  };
}
