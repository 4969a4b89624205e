import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/**
 * A software passkey authenticator speaking WebAuthn's wire format (what a browser hands the page after
 * `navigator.credentials.create()` / `.get()`): ES256 keys, "none" attestation, CBOR and COSE encoded by hand, a
 * signature counter. It lets the tests drive Coffer's passkey ceremonies without a browser, and forge the
 * variations an attacker would try (another origin, no user verification, a cloned counter, a replay).
 */
type Cbor = number | string | Buffer | Cbor[] | Map<number | string, Cbor>;

function head(major: number, value: number): Buffer {
  if (value < 24) return Buffer.of((major << 5) | value);
  if (value < 0x100) return Buffer.of((major << 5) | 24, value);
  if (value < 0x10000) return Buffer.concat([Buffer.of((major << 5) | 25), Buffer.from([value >> 8, value & 0xff])]);
  const four = Buffer.alloc(4);
  four.writeUInt32BE(value);
  return Buffer.concat([Buffer.of((major << 5) | 26), four]);
}

export function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
  return Buffer.concat([head(5, value.size), ...[...value].flatMap(([key, item]) => [cbor(key), cbor(item)])]);
}

const b64url = (bytes: Buffer) => bytes.toString('base64url');
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest();

export interface CeremonyOptions {
  challenge: string;
  rp?: { id?: string };
  rpId?: string;
  user?: { id: string };
}

export interface Variation {
  /** The origin the "browser" reports; the authenticator's own by default. */
  origin?: string;
  userVerified?: boolean;
  /** The signature counter to report instead of the next one. */
  counter?: number;
  /** Sign with this key instead of the credential's. */
  signWith?: KeyObject;
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(16);
  readonly #keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  #counter = 0;
  #userHandle = '';

  constructor(readonly origin: string) {}

  get rpId(): string {
    return new URL(this.origin).hostname;
  }

  #authData(flags: number, counter: number, attested?: Buffer): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    return Buffer.concat([sha256(this.rpId), Buffer.of(flags), count, ...(attested === undefined ? [] : [attested])]);
  }

  #clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  /** The answer to registration options (`publicKey` of `navigator.credentials.create`). */
  register(options: CeremonyOptions, variation: Variation = {}): Record<string, unknown> {
    this.#userHandle = options.user?.id ?? '';
    const jwk = this.#keys.publicKey.export({ format: 'jwk' });
    const cose = cbor(new Map<number, Cbor>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x ?? '', 'base64url')], [-3, Buffer.from(jwk.y ?? '', 'base64url')]]));
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(this.credentialId.length);
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.credentialId, cose]);
    const flags = 0x01 | (variation.userVerified === false ? 0 : 0x04) | 0x40;
    const authData = this.#authData(flags, this.#counter, attested);
    const attestationObject = cbor(new Map<string, Cbor>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]));
    return {
      id: b64url(this.credentialId), rawId: b64url(this.credentialId), type: 'public-key',
      response: { clientDataJSON: b64url(this.#clientData('webauthn.create', options.challenge, variation.origin ?? this.origin)), attestationObject: b64url(attestationObject), transports: ['internal'] },
      clientExtensionResults: {},
    };
  }

  /** The answer to sign-in options (`publicKey` of `navigator.credentials.get`). */
  assert(options: CeremonyOptions, variation: Variation = {}): Record<string, unknown> {
    const counter = variation.counter ?? (this.#counter += 1);
    const flags = 0x01 | (variation.userVerified === false ? 0 : 0x04);
    const authData = this.#authData(flags, counter);
    const clientData = this.#clientData('webauthn.get', options.challenge, variation.origin ?? this.origin);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), variation.signWith ?? this.#keys.privateKey);
    return {
      id: b64url(this.credentialId), rawId: b64url(this.credentialId), type: 'public-key',
      response: { clientDataJSON: b64url(clientData), authenticatorData: b64url(authData), signature: b64url(signature), ...(this.#userHandle === '' ? {} : { userHandle: this.#userHandle }) },
      clientExtensionResults: {},
    };
  }
}
