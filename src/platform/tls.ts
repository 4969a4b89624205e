import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { generate } from 'selfsigned';
import { ConfigError } from './config-error.ts';

/** TLS 1.2 and 1.3 with forward-secret AEAD suites only. */
export const tlsCiphers = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export interface TlsMaterial {
  key: string;
  cert: string;
  certFile: string;
  generated: boolean;
}

const validityDays = 365;
const renewBeforeDays = 14;

/**
 * The certificate to serve: the operator's files if configured, otherwise a self-signed one for localhost kept
 * under the home directory (key mode 0600), generated on first start and renewed when it is about to expire.
 */
export async function loadTlsMaterial(
  homeDir: string,
  configured: { certFile: string | undefined; keyFile: string | undefined },
  nowMs: number,
): Promise<TlsMaterial> {
  if (configured.certFile !== undefined && configured.keyFile !== undefined) {
    return { ...configuredPair(configured.certFile, configured.keyFile), certFile: configured.certFile, generated: false };
  }
  const dir = path.join(homeDir, 'tls');
  const certFile = path.join(dir, 'localhost.crt');
  const keyFile = path.join(dir, 'localhost.key');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    const cert = fs.readFileSync(certFile, 'utf8');
    const expiresMs = new (await import('node:crypto')).X509Certificate(cert).validTo;
    if (Date.parse(expiresMs) - nowMs > renewBeforeDays * 86_400_000) {
      return { cert, key: fs.readFileSync(keyFile, 'utf8'), certFile, generated: false };
    }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(nowMs - 60_000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + validityDays * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
  fs.writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, certFile, generated: true };
}

/** Reads a configured file, or refuses naming the setting that gave it. */
function readConfigured(variable: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${variable}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/**
 * The certificate and key given by COFFER_TLS_CERT and COFFER_TLS_KEY, checked before anything listens: each must
 * be PEM that parses, and the key must be the certificate's. A refusal names the setting and the file.
 */
function configuredPair(certFile: string, keyFile: string): { cert: string; key: string } {
  const cert = readConfigured('COFFER_TLS_CERT', certFile);
  const key = readConfigured('COFFER_TLS_KEY', keyFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`COFFER_TLS_CERT: ${certFile} holds no PEM certificate`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`COFFER_TLS_KEY: ${keyFile} holds no PEM private key (or one protected by a passphrase, which Coffer cannot open)`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new ConfigError(`COFFER_TLS_KEY: ${keyFile} is not the private key of the certificate in ${certFile}`);
  return { cert, key };
}
