import { createSecretKey, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { assert } from '../platform/assert.ts';
import { Secret } from '../platform/secret.ts';
import { openAesGcm, sealAesGcm, nonceBytes, tagBytes, type Sealed } from './aes-gcm.ts';
import { cardNumberDigitsMax, cardNumberDigitsMin, parseCardNumber, type CardNumber } from './card-number.ts';
import { VaultError } from './vault-error.ts';

/**
 * Envelope encryption of card numbers. A data key (DEK) is 32 random bytes that encrypts card numbers; it is
 * stored only wrapped by the KEK (`key-encryption-key.ts`), as a `DataKeyRow`. `data-key-ring.ts` makes, stores
 * and caches data keys; this file is the format and the two operations.
 *
 *   class DataKey { id; encryptionsLeft; constructor(id, bytes: Secret<Buffer>, encryptionsMax) }
 *   encryptCardNumber(cardNumber: CardNumber, rowId: string, dataKey: DataKey): Buffer
 *   decryptCardNumber(ciphertext: Buffer, rowId: string, dataKey: DataKey): CardNumber
 *   dataKeyIdOf(ciphertext: Buffer): string           // which data key to load before decrypting
 *   dataKeyAad(dataKeyId: string): Buffer              // what a data key's wrapping is bound to
 *
 * Ciphertext format, version 1 (all lengths in bytes):
 *
 *   version (1) = 0x01 | n (1) | data key id (n, ASCII) | nonce (12) | ciphertext (12..19) | tag (16)
 *
 * AES-256-GCM; the associated data is the header (version, n, id) followed by `card_number`, a NUL and the UTF-8
 * row id. A ciphertext therefore decrypts only for the row it was made for and under the data key it names:
 * copying it to another row, or editing the id or version in its header, fails authentication. The ciphertext
 * is as long as the card number (its length is no secret: the brand, kept in clear, mostly implies it).
 *
 * Errors are `VaultError`s (`ciphertext_malformed`, `ciphertext_version_unsupported`,
 * `ciphertext_authentication_failed`) whose messages name ids, never a card number or key.
 */

/** A data key as stored: only its wrapped form, and the KEK that wrapped it. */
export interface DataKeyRow {
  /** `dek_` and 24 base62 characters. */
  id: string;
  kekId: string;
  /** The KEK provider's wrapped form, bound to `id` (`dataKeyAad`). */
  wrapped: Buffer;
  createdAt: Date;
}

const ciphertextVersion = 1;
const dataKeyIdPattern = /^dek_[0-9A-Za-z]{1,60}$/;
const dataKeyBytes = 32;

interface DataKeyState {
  key: KeyObject;
  encryptionsLeft: number;
}

// Key material lives outside the object, so no enumeration, JSON or inspection of a DataKey can reach it.
const states = new WeakMap<DataKey, DataKeyState>();

/**
 * An unwrapped data key. One that encrypts counts its encryptions (each draws a random nonce, which must stay far
 * below 2^32 per key); one unwrapped from a row only decrypts (`encryptionsMax` 0), because another process may
 * have used its nonces already.
 */
export class DataKey {
  readonly id: string;

  constructor(id: string, bytes: Secret<Buffer>, encryptionsMax: number) {
    assert(dataKeyIdPattern.test(id), 'a data key id is dek_<base62>');
    assert(bytes.reveal().length === dataKeyBytes, 'a data key is 32 bytes');
    this.id = id;
    states.set(this, { key: createSecretKey(bytes.reveal()), encryptionsLeft: encryptionsMax });
  }

  get encryptionsLeft(): number {
    return state(this).encryptionsLeft;
  }

  [inspect.custom](): string {
    return `DataKey(${this.id})`;
  }
}

function state(dataKey: DataKey): DataKeyState {
  const found = states.get(dataKey);
  assert(found !== undefined, 'a DataKey is made by its constructor');
  return found;
}

export function dataKeyAad(dataKeyId: string): Buffer {
  return Buffer.from(dataKeyId, 'ascii');
}

function header(dataKeyId: string): Buffer {
  const id = Buffer.from(dataKeyId, 'ascii');
  return Buffer.concat([Buffer.of(ciphertextVersion, id.length), id]);
}

function cardNumberAad(headerBytes: Buffer, rowId: string): Buffer {
  return Buffer.concat([headerBytes, Buffer.from(`card_number\0${rowId}`, 'utf8')]);
}

export function encryptCardNumber(cardNumber: CardNumber, rowId: string, dataKey: DataKey): Buffer {
  assert(rowId.length > 0, 'a card number is encrypted for a row id');
  const keyState = state(dataKey);
  assert(keyState.encryptionsLeft > 0, `data key ${dataKey.id} may not encrypt (decrypt-only or used up)`);
  keyState.encryptionsLeft -= 1;
  const headerBytes = header(dataKey.id);
  const plaintext = Buffer.from(cardNumber.reveal(), 'ascii');
  const sealed = sealAesGcm(keyState.key, plaintext, cardNumberAad(headerBytes, rowId));
  plaintext.fill(0);
  return Buffer.concat([headerBytes, sealed.nonce, sealed.ciphertext, sealed.tag]);
}

interface ParsedCiphertext {
  headerBytes: Buffer;
  dataKeyId: string;
  sealed: Sealed;
}

function parseCiphertext(ciphertext: Buffer): ParsedCiphertext {
  if (ciphertext.length < 2) throw new VaultError('ciphertext_malformed', 'a card ciphertext is too short');
  if (ciphertext[0] !== ciphertextVersion) {
    throw new VaultError('ciphertext_version_unsupported', `card ciphertext version ${String(ciphertext[0])} is not supported`);
  }
  const idLength = ciphertext[1] ?? 0;
  const dataKeyId = ciphertext.subarray(2, 2 + idLength).toString('latin1');
  if (!dataKeyIdPattern.test(dataKeyId)) throw new VaultError('ciphertext_malformed', 'a card ciphertext names no valid data key id');
  const body = ciphertext.subarray(2 + idLength);
  // The tag has a fixed place at the end; a body of the wrong size is refused before any cipher runs.
  const textBytes = body.length - nonceBytes - tagBytes;
  if (textBytes < cardNumberDigitsMin || textBytes > cardNumberDigitsMax) {
    throw new VaultError('ciphertext_malformed', `a card ciphertext under ${dataKeyId} has the wrong length`);
  }
  return {
    headerBytes: ciphertext.subarray(0, 2 + idLength),
    dataKeyId,
    sealed: { nonce: body.subarray(0, nonceBytes), ciphertext: body.subarray(nonceBytes, -tagBytes), tag: body.subarray(-tagBytes) },
  };
}

export function dataKeyIdOf(ciphertext: Buffer): string {
  return parseCiphertext(ciphertext).dataKeyId;
}

export function decryptCardNumber(ciphertext: Buffer, rowId: string, dataKey: DataKey): CardNumber {
  const parsed = parseCiphertext(ciphertext);
  if (parsed.dataKeyId !== dataKey.id) {
    throw new VaultError('ciphertext_authentication_failed', `the card ciphertext of ${rowId} names ${parsed.dataKeyId}, not ${dataKey.id}`);
  }
  const plaintext = openAesGcm(state(dataKey).key, parsed.sealed, cardNumberAad(parsed.headerBytes, rowId));
  if (plaintext === undefined) {
    throw new VaultError('ciphertext_authentication_failed', `the card ciphertext of ${rowId} did not authenticate under ${dataKey.id}`);
  }
  const result = parseCardNumber(new Secret(plaintext.toString('ascii')));
  plaintext.fill(0);
  // Only a card number is ever encrypted, and this plaintext is authentic, so anything else is a bug.
  assert(result.ok, `an authentic ciphertext of ${rowId} holds a valid card number`);
  return result.cardNumber;
}
