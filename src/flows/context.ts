import type { Permissions } from '../identity/api-keys.ts';
import type { RiskEngine } from '../risk/risk-engine.ts';
import type { CheckpointSigner } from '../audit/checkpoint-signer.ts';
import type { Kysely, Transaction } from 'kysely';
import type { CardSource } from '../connectors/card-source.ts';
import type { CardVault } from '../vault/card-vault.ts';
import type { ConnectorRegistry } from '../connectors/connector.ts';
import type { ApiVersion } from '../objects/api-version.ts';
import type { Clock } from '../platform/clock.ts';
import type { FaultPoints } from '../platform/fault-points.ts';
import type { WebhookTiming } from '../platform/config.ts';
import type { Logger } from '../platform/logger.ts';
import type { Secret } from '../platform/secret.ts';
import type { Database } from '../store/database.ts';
import type { CommitDurability } from '../store/commit-durability.ts';
import type { ShopperNotifier } from '../connectors/shopper-notifier.ts';

/** What every flow may use. Built once at start (`app/services.ts`); tests build their own with real databases. */
export interface Services {
  db: Kysely<Database>;
  clock: Clock;
  logger: Logger;
  connectors: ConnectorRegistry;
  cardSource: CardSource;
  /** The card vault: the one place card numbers are encrypted, stored and decrypted. */
  vault: CardVault;
  faults: FaultPoints;
  /** Key of the keyed hash that fingerprints cards (see platform/instance-secret.ts). */
  fingerprintKey: Secret<Buffer>;
  /** Whether writes followed by a dependent durable commit may skip their own flush (see commit-durability.ts). */
  commitDurability: CommitDurability;
  /**
   * Webhooks: the key that seals signing secrets, whether test-mode endpoints may be private addresses, and the
   * retry schedule and lease of deliveries.
   */
  webhooks: { secretKey: Secret<Buffer>; allowPrivate: boolean; timing: WebhookTiming };
  /** Signs the audit chain's checkpoints; the key lives outside the database (audit/checkpoint-signer.ts). */
  auditSigner: CheckpointSigner;
  /** Coffer's home directory, where the audit checkpoints are also appended. */
  homeDir: string;
  /** Seals the signing secrets of keys that require signed requests (identity/request-signing.ts). */
  requestSigningKey: Secret<Buffer>;
  /** Seals staff members' TOTP secrets and keys their CSRF tokens (identity/staff.ts). */
  staffSecretKey: Secret<Buffer>;
  /** Keys the hosted checkout's tokens (CSRF) to its sessions. */
  checkoutKey: Secret<Buffer>;
  /** The card frame's origin, when the operator set one (`COFFER_CARD_FRAME_ORIGIN`); else derived (checkout/pages.ts). */
  checkoutFrameOrigin: string | undefined;
  /** Sends messages to shoppers: the sandbox outbox in test mode; the operator's gateway in live mode, if set up. */
  shopperNotifier: { test: ShopperNotifier; live: ShopperNotifier | undefined };
  /** The risk engine: model, budgets, compiled rule sets (risk/risk-engine.ts). */
  risk: RiskEngine;
  /** The database's periodic upkeep (checkpoints of the embedded database). */
  maintainStorage(): Promise<void>;
}

/** The merchant and key a request acts for. */
export interface Actor {
  merchantId: string;
  livemode: boolean;
  apiKeyId: string;
  /** A publishable key may only collect card details (the vault's endpoints); a restricted key what it was granted. */
  keyKind: 'secret' | 'publishable' | 'restricted';
  /** A restricted key's grants: what it may read or write, resource by resource (also what it may expand). */
  permissions?: Permissions;
  /** The API version of this request: its `Stripe-Version` header or the merchant's default. */
  apiVersion: ApiVersion;
  /** The merchant's default version, which events are rendered in. */
  eventApiVersion: ApiVersion;
}

/** The HTTP response a flow produced, as bytes to send and to keep for idempotent replays. */
export interface Outcome {
  statusCode: number;
  body: string;
}

/** A request's idempotency key, claimed before the flow runs; its response is stored with the flow's effects. */
export interface IdempotencyClaim {
  rowId: bigint;
  key: string;
  /**
   * For a key new to this request, the lock it took the key with (a retry that takes the key over replaces it);
   * null for a key this request took over from an earlier run.
   */
  freshLock: string | null;
  /**
   * The lock this request holds the key with (its time, as text, to the microsecond). A request that stalled past
   * the lock's limit may find its key taken over by a retry; it then stores nothing in the key and releases
   * nothing, as the retry now holds it.
   */
  lock: string;
  /**
   * Whether this run wrote the claim's id into a row of its own (an attempt, a refund, an operation), or acted
   * outside Coffer (a call to a provider): its key is then never forgotten.
   */
  referenced: boolean;
  /** The claim's id, for a row that names the request that made it; marks the claim as referenced. */
  reference(): bigint;
  /** True once the response is stored; the HTTP layer stores it otherwise (errors raised before any effect). */
  completed: boolean;
  /**
   * Stores the response with the work in `tx`, if this request still holds the key; false if a retry took the key
   * over meanwhile (that retry then answers for the key).
   */
  complete(tx: Transaction<Database> | Kysely<Database>, outcome: Outcome): Promise<boolean>;
  /**
   * Checks, in the transaction that makes the request's first change, that this request still holds the key, and
   * locks the key's row until that transaction ends: a retry cannot take the key over meanwhile, and a request
   * whose key a retry already took over (after it stalled past the lock's limit) is refused with
   * `idempotency_key_in_use` and changes nothing, so one key never makes two objects.
   */
  hold(tx: Transaction<Database>): Promise<void>;
  /** The object an earlier, interrupted run of this request created (see create-and-confirm). */
  recoveryPoint: string | null;
  /** Remembers that object with the work in `tx`; refused as `hold` is if a retry took the key over. */
  setRecoveryPoint(tx: Transaction<Database>, objectId: string): Promise<void>;
}

export interface RequestContext {
  actor: Actor;
  /** A staff member acting for the merchant through the staff API: the audit log and events name them. */
  staffUserId?: string;
  /** A shopper paying on the hosted checkout: the checkout session they act in. */
  shopperSession?: string;
  requestId: string;
  origin: string;
  idempotency: IdempotencyClaim | undefined;
}

export type Tx = Transaction<Database>;

/**
 * How a change answers its request: called by the flow as the last step of the transaction that makes the change,
 * it renders the response and keeps it for the Idempotency-Key's retries, so that one commit holds both (decision
 * 0027). Optional wherever a flow also serves callers without a request to answer (jobs, the staff pages).
 */
export type Respond<R> = (tx: Tx, result: R) => Promise<void>;
