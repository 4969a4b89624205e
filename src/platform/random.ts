import { randomFillSync, randomInt } from 'node:crypto';

const base62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * CSPRNG bytes for identifiers, drawn 4 KiB at a time: one call into OpenSSL for about eighty ids instead of one
 * per id (a payment makes a dozen). Each byte is handed out once, then the pool is filled again. Secrets (keys,
 * client secrets) never come from the pool, so no secret's bytes sit in memory before it is made.
 */
const pooledByte = randomByteReader(Buffer.alloc(4096));

/** Hands out the bytes of `buffer` one at a time, filling it from the CSPRNG first and whenever it runs out. */
function randomByteReader(buffer: Buffer): () => number {
  let offset = buffer.length;
  return () => {
    if (offset === buffer.length) {
      randomFillSync(buffer);
      offset = 0;
    }
    const byte = buffer[offset] as number;
    offset += 1;
    return byte;
  };
}

/** Base62 characters from a source of random bytes, without modulo bias (rejection sampling on bytes >= 248). */
function base62From(length: number, nextByte: () => number): string {
  let out = '';
  while (out.length < length) {
    const byte = nextByte();
    if (byte < 248) out += base62[byte % 62];
  }
  return out;
}

/** A random base62 string for a secret, from fresh CSPRNG bytes of its own, without modulo bias. */
export function randomBase62(length: number): string {
  return base62From(length, randomByteReader(Buffer.alloc(length + 16)));
}

/** Random base62 characters for an identifier (not a secret), from the pooled CSPRNG bytes. */
export function randomIdCharacters(length: number): string {
  return base62From(length, pooledByte);
}

/** An object id with its type prefix (`pi_`, `ch_`, …) and 24 random characters (about 143 bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomIdCharacters(24)}`;
}

/**
 * An id that is also a bearer capability (a Checkout Session's id alone opens its payment page): the same shape
 * as `newId`, from fresh bytes like any secret.
 */
export function newSecretId(prefix: string): string {
  return `${prefix}_${randomBase62(24)}`;
}

export function randomDigits(count: number): string {
  let out = '';
  for (let i = 0; i < count; i += 1) out += String(randomInt(10));
  return out;
}
