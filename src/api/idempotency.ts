import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import type { Actor, IdempotencyClaim, Outcome } from '../flows/context.ts';
import { limits } from '../limits.ts';
import type { Database } from '../store/database.ts';
import { commitMode, type CommitDurability } from '../store/commit-durability.ts';
import { keyHeldBy, keyInUse } from '../store/idempotency-keys.ts';

/** JSON with object keys sorted, so that the same parameters in another order hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The hash a key's request is known by. A response is shaped by the powers of the key that asked (a publishable
 * key sees less of a PaymentIntent, a restricted key expands only what it may read), so a key with other powers
 * sending the same request is a different request, refused as a reuse, never given the first one's response.
 * A secret key adds nothing, so its hashes are what they were before keys were told apart.
 */
export function requestHash(method: string, path: string, params: unknown, actor?: Pick<Actor, 'keyKind' | 'permissions'>): string {
  const powers = actor?.keyKind === 'publishable' ? ' publishable'
    : actor?.keyKind === 'restricted' ? ` restricted ${canonicalJson(actor.permissions ?? {})}` : '';
  return createHash('sha256').update(`${method} ${path}${powers}\n${canonicalJson(params ?? {})}`).digest('hex');
}

export type ClaimResult =
  | { kind: 'claimed'; claim: IdempotencyClaim }
  | { kind: 'replay'; statusCode: number; body: string; originalRequestId: string; apiVersion: string | null };

export function checkIdempotencyKey(key: string): void {
  if (key.length === 0 || key.length > limits.idempotencyKeyLengthMax) {
    throw new CofferError(
      'idempotency_key_invalid',
      `Idempotency-Key must be 1 to ${limits.idempotencyKeyLengthMax} characters long.`,
      { param: 'Idempotency-Key' },
    );
  }
  // HTTP carries header values as bytes that servers and clients decode differently (UTF-8 or Latin-1): a key
  // outside printable ASCII would be stored, shown in events and sent back altered.
  if (!/^[\x20-\x7e]+$/.test(key)) {
    throw new CofferError('idempotency_key_invalid', 'Idempotency-Key may hold printable ASCII characters only (a UUID, say).', { param: 'Idempotency-Key' });
  }
}

/**
 * `freshLock`: for a key this request created, the lock time it was created with (as text, to the microsecond),
 * which only this request's claim holds; null for a key taken over from an earlier run.
 */
function makeClaim(rowId: bigint, key: string, recoveryPoint: string | null, freshLock: string | null, lock: string): IdempotencyClaim {
  const claim: IdempotencyClaim = {
    rowId,
    key,
    freshLock,
    lock,
    referenced: false,
    reference() {
      claim.referenced = true;
      return rowId;
    },
    completed: false,
    recoveryPoint,
    async complete(tx, outcome: Outcome) {
      const stored = await tx
        .updateTable('idempotency_keys')
        .set({ response_status: outcome.statusCode, response_body: outcome.body, finished_at: sql`now()`, locked_at: null })
        .where(keyHeldBy(claim))
        .executeTakeFirst();
      claim.completed = stored.numUpdatedRows > 0n;
      return claim.completed;
    },
    async hold(tx) {
      const held = await tx.selectFrom('idempotency_keys').select('id').where(keyHeldBy(claim)).forNoKeyUpdate().executeTakeFirst();
      if (held === undefined) throw keyInUse(key);
    },
    async setRecoveryPoint(tx, objectId) {
      const set = await tx.updateTable('idempotency_keys').set({ recovery_point: objectId }).where(keyHeldBy(claim)).executeTakeFirst();
      if (set.numUpdatedRows === 0n) throw keyInUse(key);
      claim.recoveryPoint = objectId;
    },
  };
  return claim;
}

/**
 * Claims an idempotency key for this request, or says what to answer instead: the stored response of the
 * request that used it first (byte for byte), 400 if that request had other parameters, 409 while it is still
 * running. A key whose request crashed (lock older than the limit) or gave up without a response (an unknown
 * outcome, a conflict) is taken over, keeping its row, so the retry can resume what the first run started.
 */
export async function claimIdempotencyKey(
  db: Kysely<Database>,
  durability: CommitDurability,
  actor: Actor,
  key: string,
  hash: string,
  method: string,
  path: string,
  requestId: string,
): Promise<ClaimResult> {
  checkIdempotencyKey(key);
  const request = { actor, key, hash, method, path, requestId };
  // A key forgotten between this request's insert and its read (a refused request that held it) is claimed again.
  for (let tries = 0; tries < 3; tries += 1) {
    const result = await claimOnce(db, durability, request);
    if (result !== undefined) return result;
  }
  throw keyInUse(key);
}

/** One try at claiming the key: undefined if the key was there when inserting and gone when reading it. */
async function claimOnce(
  db: Kysely<Database>,
  durability: CommitDurability,
  { actor, key, hash, method, path, requestId }: { actor: Actor; key: string; hash: string; method: string; path: string; requestId: string },
): Promise<ClaimResult | undefined> {
  // The claim need not wait for its own flush: every effect of the request commits durably afterwards, and a
  // flush is sequential, so it carries the claim with it; a claim lost in a crash had no effect to protect.
  // The version of the request holding the key is the one its response is shaped for: kept with the key, and
  // replaced by a retry that takes the key over (that retry then answers, in its own version).
  const publishable = actor.keyKind === 'publishable';
  const inserted = await sql<{ id: bigint; lock: string }>`
    INSERT INTO idempotency_keys (merchant_id, livemode, publishable, key, request_method, request_path, request_hash,
                                  original_request_id, locked_at, api_version)
    SELECT ${actor.merchantId}, ${actor.livemode}, ${publishable}, ${key}, ${method}, ${path}, ${hash}, ${requestId}, now(), ${actor.apiVersion.name}
    FROM (SELECT set_config('synchronous_commit', ${commitMode(durability)}, true)) AS commit_mode
    ON CONFLICT (merchant_id, livemode, publishable, key) DO NOTHING
    RETURNING id, locked_at::text AS lock`.execute(db);
  const claimed = inserted.rows[0];
  if (claimed !== undefined) return { kind: 'claimed', claim: makeClaim(BigInt(claimed.id), key, null, claimed.lock, claimed.lock) };

  const existing = await db
    .selectFrom('idempotency_keys')
    .select(['id', 'request_hash', 'request_method', 'request_path', 'response_status', 'response_body', 'original_request_id', 'api_version'])
    .where('merchant_id', '=', actor.merchantId)
    .where('livemode', '=', actor.livemode)
    .where('publishable', '=', publishable)
    .where('key', '=', key)
    .executeTakeFirst();
  if (existing === undefined) return undefined;
  if (existing.request_method !== method || existing.request_path !== path) {
    // As Stripe says it: the endpoint the key was first used for, and this one.
    throw new CofferError(
      'idempotency_key_reused',
      `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${existing.request_method} ${existing.request_path}' vs '${method} ${path}'). Try using a key other than '${key}' if you meant to execute a different request.`,
    );
  }
  if (existing.request_hash !== hash) {
    throw new CofferError(
      'idempotency_key_reused',
      `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
    );
  }
  if (existing.response_status !== null && existing.response_body !== null) {
    return {
      kind: 'replay',
      statusCode: existing.response_status,
      body: existing.response_body,
      originalRequestId: existing.original_request_id,
      apiVersion: existing.api_version,
    };
  }
  const staleBefore = sql<Date>`now() - ${`${limits.idempotencyKeyLockMs} milliseconds`}::interval`;
  const taken = await db
    .updateTable('idempotency_keys')
    .set({ locked_at: sql`now()`, api_version: actor.apiVersion.name })
    .where('id', '=', existing.id)
    .where('finished_at', 'is', null)
    .where((eb) => eb.or([eb('locked_at', 'is', null), eb('locked_at', '<', staleBefore)]))
    .returning(['id', 'recovery_point', sql<string>`locked_at::text`.as('lock')])
    .executeTakeFirst();
  if (taken === undefined) throw keyInUse(key);
  return { kind: 'claimed', claim: makeClaim(taken.id, key, taken.recovery_point, null, taken.lock) };
}

/**
 * Stores a response produced outside the flow's own transaction (an error raised before any effect). Never over a
 * response already stored, nor in a key a retry took over from this request.
 */
export async function storeResponse(db: Kysely<Database>, claim: IdempotencyClaim, outcome: Outcome): Promise<void> {
  await db
    .updateTable('idempotency_keys')
    .set({ response_status: outcome.statusCode, response_body: outcome.body, finished_at: sql`now()`, locked_at: null })
    .where(keyHeldBy(claim))
    .execute();
  claim.completed = true;
}

/**
 * Forgets a key this request created when nothing it did may be repeated by mistake: nothing it wrote names the key,
 * it holds no recovery point, and it still holds the key's lock (a retry that took the key over after a stall, and
 * may have written rows naming it, holds another, and the key is then kept). True if forgotten.
 */
async function forget(db: Kysely<Database>, claim: IdempotencyClaim): Promise<boolean> {
  if (claim.freshLock === null || claim.referenced || claim.recoveryPoint !== null) return false;
  const forgotten = await db.deleteFrom('idempotency_keys').where('id', '=', claim.rowId).where('finished_at', 'is', null)
    .where('recovery_point', 'is', null).where(sql<boolean>`locked_at::text = ${claim.freshLock}`).executeTakeFirst();
  if (forgotten.numDeletedRows === 0n) return false;
  claim.completed = true;
  return true;
}

/**
 * A request refused for its parameters or its key's powers before it did anything: its key is forgotten, as Stripe
 * does, so the corrected request may use the same key. Otherwise the refusal is stored like any response.
 */
export async function forgetOrStore(db: Kysely<Database>, claim: IdempotencyClaim, outcome: Outcome): Promise<void> {
  if (!(await forget(db, claim))) await storeResponse(db, claim, outcome);
}

/**
 * Lets a retry run the request again: used when no response may be stored (conflicts, unknown outcomes). A key
 * whose request wrote nothing (a lock it timed out on) is forgotten, so it binds no parameters either; one whose
 * request may have acted keeps its row, for the retry to resume from.
 */
export async function releaseClaim(db: Kysely<Database>, claim: IdempotencyClaim): Promise<void> {
  if (await forget(db, claim)) return;
  await db
    .updateTable('idempotency_keys')
    .set({ locked_at: null })
    .where(keyHeldBy(claim))
    .execute();
}
