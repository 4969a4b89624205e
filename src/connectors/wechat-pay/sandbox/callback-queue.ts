import { createCipheriv, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { limits } from '../../../limits.ts';
import type { Clock } from '../../../platform/clock.ts';
import { newId } from '../../../platform/random.ts';
import type { Secret } from '../../../platform/secret.ts';
import type { NotificationSender, SandboxFaults } from '../../sandbox-faults.ts';
import { weChatTime, type CallbackEnvelope } from '../wire.ts';
import { flipByte, weChatNonce, type PlatformSigner } from './sandbox-signing.ts';
import type { CallbackTamper, SandboxCallbackRow } from './tables.ts';
import { withDeadline } from '../../../platform/deadline.ts';

/**
 * WeChat Pay's callbacks: the resource is encrypted with the merchant's APIv3 key (AES-256-GCM, a 12-character
 * nonce, the 16-byte tag appended, base64), the body signed like an answer, and a callback that is not answered
 * 200 or 204 is sent again on WeChat's published schedule (15 retries over 24 h 4 min), compressed by the test
 * controls' divisor. Callbacks are rows, so that they survive a restart, and are claimed with a lease, so that two
 * processes running the job never send the same attempt twice.
 */
export const weChatRetryScheduleMs: readonly number[] = [
  15_000, 15_000, 30_000, 3 * 60_000, 10 * 60_000, 20 * 60_000, 30 * 60_000, 30 * 60_000, 30 * 60_000,
  60 * 60_000, 3 * 3_600_000, 3 * 3_600_000, 3 * 3_600_000, 6 * 3_600_000, 6 * 3_600_000,
];

/** The most copies of one callback the `duplicate` fault sends (a test wants a few, never a flood). */
const duplicatesMax = 10;

/** A callback being sent is leased this long: a process that dies mid-send leaves it to be sent again after. */
const deliveryLeaseMs = limits.webhookTimeoutMs * 3;

export interface CallbackEvent {
  url: string;
  eventType: string;
  summary: string;
  /** `transaction` or `refund`: the resource's original type, also its associated data. */
  originalType: 'transaction' | 'refund';
  resource: Record<string, unknown>;
}

export interface CallbackQueueOptions<DB> {
  db: Kysely<DB>;
  clock: Clock;
  apiV3Key: Secret<string>;
  signer: PlatformSigner;
  faults: SandboxFaults;
  send: NotificationSender;
}

export class CallbackQueue<DB> {
  readonly #db: Kysely<DB>;
  readonly #clock: Clock;
  readonly #apiV3Key: Secret<string>;
  readonly #signer: PlatformSigner;
  readonly #faults: SandboxFaults;
  readonly #send: NotificationSender;

  constructor(options: CallbackQueueOptions<DB>) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#apiV3Key = options.apiV3Key;
    this.#signer = options.signer;
    this.#faults = options.faults;
    this.#send = options.send;
  }

  /**
   * Queues a callback (inside the caller's transaction, with the change it reports). The test controls' next
   * notification faults apply here: dropped, sent several times, held, reordered or corrupted on the way.
   */
  async queue(executor: Kysely<DB>, event: CallbackEvent): Promise<void> {
    const faults = this.#faults.nextNotification();
    if (faults.drop === true) return;
    const nowMs = this.#clock.nowMs();
    const envelope = this.#envelope(event, nowMs);
    const body = JSON.stringify(envelope);
    const dueAt = new Date(nowMs + (faults.delayMs ?? 0));
    // A callback held for reordering goes out right after this one, the next to be queued.
    await sql`UPDATE sandbox_wechat_pay_callbacks SET held = false, next_attempt_at = ${new Date(dueAt.getTime() + 1)}
              WHERE held AND delivered_at IS NULL`.execute(executor);
    // 'amount' (Alipay's plain-text field) is inside the ciphertext here: corrupting it corrupts the ciphertext.
    const tamper: CallbackTamper | null = faults.tamper === undefined ? null : faults.tamper === 'amount' ? 'ciphertext' : faults.tamper;
    const copies = Math.max(1, Math.min(faults.duplicate ?? 1, duplicatesMax));
    for (let copy = 0; copy < copies; copy += 1) {
      await sql`INSERT INTO sandbox_wechat_pay_callbacks (id, notification_id, url, body, tamper, held, next_attempt_at)
                VALUES (${newId('wxcb')}, ${envelope.id}, ${event.url}, ${body}, ${tamper}, ${faults.reorder === true},
                        ${dueAt})`.execute(executor);
    }
  }

  /** A callback whose `Wechatpay-Signature` starts `WECHATPAY/SIGNTEST/`: WeChat's test that the merchant verifies. */
  async queueProbe(url: string): Promise<string> {
    const nowMs = this.#clock.nowMs();
    const envelope = this.#envelope({
      url, eventType: 'TRANSACTION.SUCCESS', summary: 'signature probe', originalType: 'transaction', resource: { probe: true },
    }, nowMs);
    await sql`INSERT INTO sandbox_wechat_pay_callbacks (id, notification_id, url, body, probe, next_attempt_at)
              VALUES (${newId('wxcb')}, ${envelope.id}, ${url}, ${JSON.stringify(envelope)}, true, ${new Date(nowMs)})`.execute(this.#db);
    return envelope.id;
  }

  /**
   * Sends up to `limit` due callbacks, oldest first, one at a time. Returns how many were attempted (acknowledged
   * or not), so a job runs another batch only when this one was full.
   */
  async deliverDue(limit: number): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const claimed = await sql<SandboxCallbackRow & { due_at: Date }>`
      WITH due AS (
        SELECT id, next_attempt_at AS due_at FROM sandbox_wechat_pay_callbacks
        WHERE delivered_at IS NULL AND given_up_at IS NULL AND NOT held AND next_attempt_at <= ${new Date(nowMs)}
        ORDER BY next_attempt_at, sequence
        LIMIT ${Math.max(0, Math.min(limit, limits.jobBatchSize))}
        FOR UPDATE SKIP LOCKED)
      UPDATE sandbox_wechat_pay_callbacks AS callback SET next_attempt_at = ${new Date(nowMs + deliveryLeaseMs)}
      FROM due WHERE callback.id = due.id
      RETURNING callback.*, due.due_at`.execute(this.#db);
    const rows = [...claimed.rows].sort((a, b) => a.due_at.getTime() - b.due_at.getTime() || Number(a.sequence - b.sequence));
    for (const row of rows) await this.#attempt(row);
    return rows.length;
  }

  async #attempt(row: SandboxCallbackRow): Promise<void> {
    const body = row.tamper === 'ciphertext' || row.tamper === 'tag' ? tamperResource(row.body, row.tamper) : row.body;
    const headers = {
      'Content-Type': 'application/json',
      ...this.#signer.headers(row.body, { probe: row.probe, corrupt: row.tamper === 'signature' }),
    };
    let status: number | null = null;
    let failure: string | null = null;
    try {
      status = (await withDeadline(this.#send(row.url, { headers, body }), limits.webhookTimeoutMs)).statusCode;
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }
    const nowMs = this.#clock.nowMs();
    const attempts = row.attempts + 1;
    if (status === 200 || status === 204) {
      await sql`UPDATE sandbox_wechat_pay_callbacks SET delivered_at = ${new Date(nowMs)}, attempts = ${attempts},
                last_status = ${status}, last_error = NULL WHERE id = ${row.id}`.execute(this.#db);
      return;
    }
    const retryInMs = weChatRetryScheduleMs[attempts - 1];
    const error = failure ?? `answered HTTP ${status ?? 0}`;
    if (retryInMs === undefined) {
      await sql`UPDATE sandbox_wechat_pay_callbacks SET given_up_at = ${new Date(nowMs)}, attempts = ${attempts},
                last_status = ${status}, last_error = ${error} WHERE id = ${row.id}`.execute(this.#db);
      return;
    }
    await sql`UPDATE sandbox_wechat_pay_callbacks SET next_attempt_at = ${new Date(nowMs + this.#faults.scaled(retryInMs))},
              attempts = ${attempts}, last_status = ${status}, last_error = ${error} WHERE id = ${row.id}`.execute(this.#db);
  }

  #envelope(event: CallbackEvent, nowMs: number): CallbackEnvelope {
    const nonce = weChatNonce(12);
    const cipher = createCipheriv('aes-256-gcm', Buffer.from(this.#apiV3Key.reveal(), 'utf8'), Buffer.from(nonce, 'utf8'));
    cipher.setAAD(Buffer.from(event.originalType, 'utf8'));
    const sealed = Buffer.concat([cipher.update(JSON.stringify(event.resource), 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return {
      id: randomUUID(),
      create_time: weChatTime(nowMs),
      resource_type: 'encrypt-resource',
      event_type: event.eventType,
      summary: event.summary,
      resource: {
        original_type: event.originalType,
        algorithm: 'AEAD_AES_256_GCM',
        ciphertext: sealed.toString('base64'),
        associated_data: event.originalType,
        nonce,
      },
    };
  }
}

/** The body with one bit of the ciphertext's first byte, or of the tag's last byte, flipped. */
function tamperResource(body: string, part: 'ciphertext' | 'tag'): string {
  const envelope = JSON.parse(body) as CallbackEnvelope;
  const sealed = Buffer.from(envelope.resource.ciphertext, 'base64');
  envelope.resource.ciphertext = flipByte(sealed, part === 'ciphertext' ? 0 : -1).toString('base64');
  return JSON.stringify(envelope);
}
