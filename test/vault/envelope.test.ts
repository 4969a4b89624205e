// Goal: a card ciphertext decrypts only for its own row, under its own data key, with every byte and all 16 tag bytes.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { AssertionFailure } from '../../src/platform/assert.ts';
import { newId } from '../../src/platform/random.ts';
import { Secret } from '../../src/platform/secret.ts';
import { openAesGcm, sealAesGcm } from '../../src/vault/aes-gcm.ts';
import { DataKey, dataKeyIdOf, decryptCardNumber, encryptCardNumber } from '../../src/vault/envelope.ts';
import { VaultError } from '../../src/vault/vault-error.ts';
import { arbitraryCardDigits, cardNumber } from './support/cards.ts';

function newDataKey(encryptionsMax = 1_000_000): DataKey {
  return new DataKey(newId('dek'), new Secret(randomBytes(32)), encryptionsMax);
}

/** Decrypting must fail with a VaultError, and the error must not carry the card number anywhere. */
function assertRefused(attempt: () => unknown, digits: string, what: string): VaultError {
  let caught: unknown;
  try {
    attempt();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof VaultError, `${what}: expected a VaultError, got ${inspect(caught)}`);
  for (const shown of [caught.message, caught.stack ?? '', inspect(caught), JSON.stringify(caught)]) {
    assert.ok(!shown.includes(digits), `${what}: the error shows the card number`);
  }
  return caught;
}

const rowId = 'card_1Nv0FGQ9RKHgCVdK2ZbQ3bNn';
const digits = '4242424242424242';

describe('card number envelope', () => {
  test('round trip: any card number, any row id', () => {
    const dataKey = newDataKey();
    fc.assert(
      fc.property(arbitraryCardDigits(), fc.string({ minLength: 1, maxLength: 80 }), (number, row) => {
        const ciphertext = encryptCardNumber(cardNumber(number), row, dataKey);
        assert.equal(decryptCardNumber(ciphertext, row, dataKey).reveal(), number);
        assert.equal(dataKeyIdOf(ciphertext), dataKey.id);
        assert.ok(!ciphertext.toString('latin1').includes(number.slice(0, 6)), 'no plaintext in the ciphertext');
      }),
      { numRuns: 300 },
    );
  });

  test('the format is version | id length | dek id | nonce | ciphertext | tag, with a fresh nonce each time', () => {
    const dataKey = newDataKey();
    const first = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    const second = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    assert.equal(first[0], 1);
    assert.equal(first[1], dataKey.id.length);
    assert.equal(first.subarray(2, 2 + dataKey.id.length).toString('ascii'), dataKey.id);
    assert.equal(first.length, 2 + dataKey.id.length + 12 + digits.length + 16);
    assert.notDeepEqual(first.subarray(2 + dataKey.id.length, 14 + dataKey.id.length), second.subarray(2 + dataKey.id.length, 14 + dataKey.id.length));
    assert.notDeepEqual(first, second);
  });

  test('a ciphertext moved to another row does not decrypt', () => {
    const dataKey = newDataKey();
    fc.assert(
      fc.property(arbitraryCardDigits(), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (number, row, otherRow) => {
        fc.pre(row !== otherRow);
        const ciphertext = encryptCardNumber(cardNumber(number), row, dataKey);
        const error = assertRefused(() => decryptCardNumber(ciphertext, otherRow, dataKey), number, 'moved');
        assert.equal(error.code, 'ciphertext_authentication_failed');
      }),
      { numRuns: 300 },
    );
  });

  test('a ciphertext does not decrypt under another data key, even one given its id', () => {
    const dataKey = newDataKey();
    const ciphertext = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    assert.equal(assertRefused(() => decryptCardNumber(ciphertext, rowId, newDataKey()), digits, 'other key').code, 'ciphertext_authentication_failed');
    const impostor = new DataKey(dataKey.id, new Secret(randomBytes(32)), 0);
    assert.equal(assertRefused(() => decryptCardNumber(ciphertext, rowId, impostor), digits, 'same id').code, 'ciphertext_authentication_failed');
  });

  test('a tag truncated to 4 bytes (or any length below 16) is refused', () => {
    const dataKey = newDataKey();
    const ciphertext = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    for (let tagBytes = 0; tagBytes < 16; tagBytes += 1) {
      const truncated = ciphertext.subarray(0, ciphertext.length - 16 + tagBytes);
      assertRefused(() => decryptCardNumber(truncated, rowId, dataKey), digits, `tag of ${tagBytes} bytes`);
    }
  });

  test('flipping any single bit anywhere makes decryption fail', () => {
    const dataKey = newDataKey();
    const ciphertext = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    const codes = new Set<string>();
    for (let bit = 0; bit < ciphertext.length * 8; bit += 1) {
      const altered = Buffer.from(ciphertext);
      altered[bit >> 3]! ^= 1 << (bit & 7);
      codes.add(assertRefused(() => decryptCardNumber(altered, rowId, dataKey), digits, `bit ${bit}`).code);
    }
    assert.deepEqual([...codes].sort(), ['ciphertext_authentication_failed', 'ciphertext_malformed', 'ciphertext_version_unsupported']);
    // Appending or dropping a byte fails too: the tag is found at the end.
    assertRefused(() => decryptCardNumber(Buffer.concat([ciphertext, Buffer.of(0)]), rowId, dataKey), digits, 'appended');
    assertRefused(() => decryptCardNumber(ciphertext.subarray(1), rowId, dataKey), digits, 'first byte dropped');
  });

  test('a wrong version byte is refused as unsupported, and an empty or short blob as malformed', () => {
    const dataKey = newDataKey();
    const ciphertext = encryptCardNumber(cardNumber(digits), rowId, dataKey);
    for (const version of [0, 2, 0x7f, 0xff]) {
      const altered = Buffer.from(ciphertext);
      altered[0] = version;
      assert.equal(assertRefused(() => decryptCardNumber(altered, rowId, dataKey), digits, `v${version}`).code, 'ciphertext_version_unsupported');
      assert.throws(() => dataKeyIdOf(altered), (error) => error instanceof VaultError && error.code === 'ciphertext_version_unsupported');
    }
    for (const short of [Buffer.alloc(0), Buffer.of(1), ciphertext.subarray(0, 2 + dataKey.id.length + 12 + 16)]) {
      assert.equal(assertRefused(() => decryptCardNumber(short, rowId, dataKey), digits, 'short').code, 'ciphertext_malformed');
    }
  });

  test('a data key encrypts at most encryptionsMax times, and one unwrapped from a row never', () => {
    const limited = newDataKey(2);
    encryptCardNumber(cardNumber(digits), rowId, limited);
    encryptCardNumber(cardNumber(digits), rowId, limited);
    assert.equal(limited.encryptionsLeft, 0);
    assert.throws(() => encryptCardNumber(cardNumber(digits), rowId, limited), AssertionFailure);
    assert.throws(() => encryptCardNumber(cardNumber(digits), rowId, newDataKey(0)), AssertionFailure);
  });

  test('a data key shows its id and nothing of its bytes', () => {
    const bytes = randomBytes(32);
    const dataKey = new DataKey('dek_shown', new Secret(Buffer.from(bytes)), 1);
    const shown = [inspect(dataKey), JSON.stringify(dataKey), String(Object.entries(dataKey)), inspect(dataKey, { showHidden: true })].join(' ');
    assert.ok(shown.includes('dek_shown'));
    for (const encoding of ['hex', 'base64', 'latin1'] as const) assert.ok(!shown.includes(bytes.toString(encoding).slice(0, 12)), encoding);
  });
});

describe('AES-GCM primitive', () => {
  test('a tag cut to 4 bytes is refused even though it is the true tag’s prefix', () => {
    const key = createSecretKey(randomBytes(32));
    const aad = Buffer.from('row');
    const sealed = sealAesGcm(key, Buffer.from(digits), aad);
    assert.deepEqual(openAesGcm(key, sealed, aad), Buffer.from(digits));
    for (const tagBytes of [4, 8, 12, 15]) {
      assert.equal(openAesGcm(key, { ...sealed, tag: sealed.tag.subarray(0, tagBytes) }, aad), undefined, `${tagBytes} bytes`);
    }
  });

  test('Node 20 itself accepts that 4-byte tag when authTagLength is not given (why the option matters)', { skip: !process.versions.node.startsWith('20.') }, () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const ciphertext = Buffer.concat([cipher.update(digits), cipher.final()]);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAuthTag(cipher.getAuthTag().subarray(0, 4));
    assert.equal(Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString(), digits);
  });
});
