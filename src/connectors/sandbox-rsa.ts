import { generateKeyPair, generateKeyPairSync } from 'node:crypto';
import { promisify } from 'node:util';

/** An RSA-2048 key pair as PEM text, for the wallet sandboxes' test accounts. */
export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** The private half's encoding: PKCS#1 (what Alipay's key tool gives) or PKCS#8 (WeChat Pay's `apiclient_key.pem`). */
type PrivateEncoding = 'pkcs1' | 'pkcs8';

function options(privateEncoding: PrivateEncoding) {
  return {
    modulusLength: 2048,
    privateKeyEncoding: { type: privateEncoding, format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  } as const;
}

export function rsaKeyPair(privateEncoding: PrivateEncoding): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', options(privateEncoding));
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** The same, made on libuv's thread pool rather than on the caller's thread. */
export async function rsaKeyPairInBackground(privateEncoding: PrivateEncoding): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', options(privateEncoding));
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}
