import { sql, type Kysely, type RawBuilder } from 'kysely';
import { testCardsByNumber } from '../connectors/card/test-cards.ts';
import type { CardData } from '../connectors/connector.ts';
import { CofferError } from '../domain/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { cardFingerprint } from '../platform/instance-secret.ts';
import type { Logger } from '../platform/logger.ts';
import { newId } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import { auditRow } from '../store/audit.ts';
import type { CardFacts, Database } from '../store/database.ts';
import { cardBin, cardBrand, cardLast4, parseCardNumber, type CardNumber } from './card-number.ts';
import { DataKeyRing, type DataKeyRows } from './data-key-ring.ts';
import type { DataKeyRow } from './envelope.ts';
import type { KeyEncryptionKeyProvider, WrappedKey } from './key-encryption-key.ts';
import type { DataKeyRowsForRewrap } from './rewrap.ts';

/** Card data as it arrives, once, from the shopper's browser or the merchant's server. */
export interface IncomingCard {
  number: Secret<string>;
  expMonth: number;
  expYear: number;
  /** Checked for form and then dropped: the security code is never stored, not even encrypted. */
  cvc: Secret<string> | undefined;
}

export interface VaultedCard {
  vaultCardId: string;
  facts: CardFacts;
  bin: string;
}

interface DataKeySqlRow {
  id: string;
  kek_id: string;
  wrapped: Uint8Array;
  created_at: Date;
}

function fromSql(row: DataKeySqlRow): DataKeyRow {
  return { id: row.id, kekId: row.kek_id, wrapped: Buffer.from(row.wrapped), createdAt: new Date(row.created_at) };
}

/** Whether the vault holds any data key (then some KEK store wrapped it: see open-kek.ts). */
export async function vaultHasDataKeys(db: Kysely<Database>): Promise<boolean> {
  return (await vaultDataKeyRows(db).listAfter(undefined, 1)).length > 0;
}

/** The vault's rows, reached only through the functions of the `vault` schema (its tables are closed to us). */
export function vaultDataKeyRows(db: Kysely<Database>): DataKeyRows & DataKeyRowsForRewrap {
  return {
    async insert(row) {
      await sql`SELECT vault.insert_data_key(${row.id}, ${row.kekId}, ${row.wrapped}, ${row.createdAt})`.execute(db);
    },
    async find(id) {
      const result = await sql<DataKeySqlRow>`SELECT * FROM vault.find_data_key(${id})`.execute(db);
      const row = result.rows[0];
      return row === undefined ? undefined : fromSql(row);
    },
    async listAfter(afterId, limit) {
      const result = await sql<DataKeySqlRow>`SELECT * FROM vault.data_keys_after(${afterId ?? null}, ${limit})`.execute(db);
      return result.rows.map(fromSql);
    },
    async replaceWrapping(id: string, expectedKekId: string, next: WrappedKey) {
      const result = await sql<{ replaced: boolean }>`SELECT vault.replace_wrapping(${id}, ${expectedKekId}, ${next.kekId}, ${next.wrapped}) AS replaced`.execute(db);
      return result.rows[0]?.replaced === true;
    },
    async countWrappedUnder(kekId) {
      const result = await sql<{ n: bigint }>`SELECT vault.count_wrapped_under(${kekId}) AS n`.execute(db);
      return Number(result.rows[0]?.n ?? 0);
    },
  };
}

function cardError(code: 'incorrect_number' | 'invalid_expiry_month' | 'invalid_expiry_year' | 'invalid_cvc', message: string, param: string): CofferError {
  return new CofferError(code, message, { param, declineCode: code });
}

/** The SQL expression that stores a sealed card (`CardVault.sealCard`), for a statement that records its use. */
export function storeCardSql(vaultCardId: string, ciphertext: Buffer): RawBuilder<unknown> {
  return sql`vault.store_card(${vaultCardId}, ${ciphertext})`;
}

/**
 * The only component that sees card numbers: it checks them, encrypts them under the vault's keys and keeps the
 * ciphertext in the vault schema, and gives the rest of Coffer only the facts (brand, BIN, last four, expiry,
 * country, a keyed fingerprint). It decrypts only to send a card to the acquirer, and records every decryption
 * in the audit log.
 */
export class CardVault {
  readonly #db: Kysely<Database>;
  readonly #ring: DataKeyRing;
  readonly #fingerprintKey: Secret<Buffer>;
  readonly #clock: Clock;
  readonly kek: KeyEncryptionKeyProvider;

  constructor(db: Kysely<Database>, kek: KeyEncryptionKeyProvider, clock: Clock, fingerprintKey: Secret<Buffer>, _logger: Logger) {
    this.#db = db;
    this.kek = kek;
    this.#ring = new DataKeyRing(kek, vaultDataKeyRows(db), clock);
    this.#fingerprintKey = fingerprintKey;
    this.#clock = clock;
  }

  checkCard(card: IncomingCard): CardNumber {
    const parsed = parseCardNumber(card.number);
    if (!parsed.ok) throw cardError('incorrect_number', 'Your card number is incorrect.', 'number');
    if (!Number.isInteger(card.expMonth) || card.expMonth < 1 || card.expMonth > 12) {
      throw cardError('invalid_expiry_month', "Your card's expiration month is invalid.", 'exp_month');
    }
    const now = new Date(this.#clock.nowMs());
    const year = card.expYear < 100 ? 2000 + card.expYear : card.expYear;
    const expired = year < now.getUTCFullYear() || (year === now.getUTCFullYear() && card.expMonth < now.getUTCMonth() + 1);
    if (!Number.isInteger(year) || expired || year > now.getUTCFullYear() + 50) {
      throw cardError('invalid_expiry_year', "Your card's expiration year is invalid.", 'exp_year');
    }
    if (card.cvc !== undefined && !/^\d{3,4}$/.test(card.cvc.reveal())) {
      throw cardError('invalid_cvc', "Your card's security code is invalid.", 'cvc');
    }
    return parsed.cardNumber;
  }

  /** Checks, encrypts and stores a card number; the security code goes no further than `checkCard`. */
  async storeCard(card: IncomingCard): Promise<VaultedCard> {
    const { vaulted, ciphertext } = await this.sealCard(card);
    await sql`SELECT ${storeCardSql(vaulted.vaultCardId, ciphertext)}`.execute(this.#db);
    return vaulted;
  }

  /**
   * Checks and encrypts a card number without storing it: the caller stores the ciphertext with
   * `storeCardSql()` in the statement that records what the card is for, so that a refused request leaves nothing.
   */
  async sealCard(card: IncomingCard): Promise<{ vaulted: VaultedCard; ciphertext: Buffer }> {
    const number = this.checkCard(card);
    const vaultCardId = newId('vcard');
    const ciphertext = await this.#ring.encrypt(number, vaultCardId);
    return { vaulted: this.#describe(card, number, vaultCardId), ciphertext };
  }

  #describe(card: IncomingCard, number: CardNumber, vaultCardId: string): VaultedCard {
    const known = testCardsByNumber.get(number.reveal());
    const brand = cardBrand(number) ?? 'unknown';
    const year = card.expYear < 100 ? 2000 + card.expYear : card.expYear;
    return {
      vaultCardId,
      bin: cardBin(number),
      facts: {
        brand,
        last4: cardLast4(number),
        exp_month: card.expMonth,
        exp_year: year,
        country: known?.country ?? null,
        funding: known?.funding ?? 'unknown',
        fingerprint: cardFingerprint(this.#fingerprintKey, number),
        networks: [brand],
        three_d_secure_supported: brand !== 'amex',
      },
    };
  }

  /** Decrypts a vaulted card for one authorization, and says so in the audit log. */
  async cardFor(vaultCardId: string, purpose: { merchantId: string; livemode: boolean; paymentMethodId: string }, expMonth: number, expYear: number): Promise<CardData> {
    const found = await sql<{ ciphertext: Uint8Array | null }>`SELECT vault.card_ciphertext(${vaultCardId}) AS ciphertext`.execute(this.#db);
    const ciphertext = found.rows[0]?.ciphertext;
    if (ciphertext === undefined || ciphertext === null) throw new CofferError('resource_missing', `The card of payment method ${purpose.paymentMethodId} is no longer in the vault.`);
    const number = await this.#ring.decrypt(Buffer.from(ciphertext), vaultCardId);
    await this.#db.insertInto('audit_log').values(auditRow({
      merchantId: purpose.merchantId, livemode: purpose.livemode, actorType: 'system', actorId: 'vault', action: 'vault.decrypt',
      objectType: 'payment_method', objectId: purpose.paymentMethodId, outcome: 'success', requestId: null, origin: null,
      details: { vault_card: vaultCardId, purpose: 'authorization' }, occurredAt: new Date(this.#clock.nowMs()),
    })).execute();
    return { number: new Secret(number.reveal()), expMonth, expYear };
  }

  forget(): void {
    this.#ring.forget();
  }
}
