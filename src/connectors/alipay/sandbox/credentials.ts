import { rsaKeyPair, rsaKeyPairInBackground, type KeyPairPem } from '../../sandbox-rsa.ts';
import { randomDigits } from '../../../platform/random.ts';

/** The keys of one sandbox app: the merchant's pair (the app key) and Alipay's pair, as the open platform issues. */
export interface AlipaySandboxCredentials {
  /** Like the open platform's sandbox app ids: 16 digits starting 2021000. */
  appId: string;
  /** The merchant signs requests with it (PKCS#1 PEM, what Alipay's key tool gives non-Java developers). */
  appPrivateKeyPem: string;
  /** Uploaded to Alipay: the sandbox verifies requests with it (SPKI PEM). */
  appPublicKeyPem: string;
  /** Alipay signs answers, notifications and return parameters with it (PKCS#1 PEM). */
  alipayPrivateKeyPem: string;
  /** Given to the merchant to verify what Alipay signs (SPKI PEM). */
  alipayPublicKeyPem: string;
}

/** Fresh RSA-2048 keys for a sandbox app (Alipay's RSA2 scheme). */
export function generateAlipaySandboxCredentials(): AlipaySandboxCredentials {
  return credentials(rsaKeyPair('pkcs1'), rsaKeyPair('pkcs1'));
}

/** The same, its two RSA key pairs made side by side on libuv's thread pool rather than on the caller's thread. */
export async function generateAlipaySandboxCredentialsInBackground(): Promise<AlipaySandboxCredentials> {
  const [app, alipay] = await Promise.all([rsaKeyPairInBackground('pkcs1'), rsaKeyPairInBackground('pkcs1')]);
  return credentials(app, alipay);
}

function credentials(app: KeyPairPem, alipay: KeyPairPem): AlipaySandboxCredentials {
  return {
    appId: `2021000${randomDigits(9)}`,
    appPrivateKeyPem: app.privateKeyPem,
    appPublicKeyPem: app.publicKeyPem,
    alipayPrivateKeyPem: alipay.privateKeyPem,
    alipayPublicKeyPem: alipay.publicKeyPem,
  };
}
