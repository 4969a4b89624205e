/**
 * Every bound Coffer enforces lives here, so that an operator can read in one place how big, how many and how
 * long anything may be. A limit that is hit is reported (an error or a log line), never silently applied.
 */
export const limits = {
  /** Largest request body the public API accepts. Stripe's own requests are a few KiB. */
  requestBodyBytesMax: 256 * 1024,
  /** Longest URL path parameter (object ids are far shorter). */
  pathParamLengthMax: 255,
  /** Stripe's limits on `metadata`. */
  metadataKeysMax: 50,
  metadataKeyLengthMax: 40,
  metadataValueLengthMax: 500,
  /** Languages a customer's `preferred_locales` may list. */
  preferredLocalesMax: 20,
  /** Longest free-text field (description, statement descriptors are shorter and have their own). */
  descriptionLengthMax: 1000,
  /** Support cases one hosted-checkout session may open (its shopper's "a problem with this payment?"). */
  supportCasesPerSessionMax: 5,
  /**
   * Phone numbers or email addresses a hosted-checkout page's step-up may name that are not the one the merchant
   * gave for its payment (refused `not_on_file`); past this, the page's step-up is closed, even to the right one.
   * It bounds the guesses the holder of a page link can make at the address on file (decision 0041); five leaves
   * room for typing mistakes. The step-up's other bounds are `stepUpLimits` in src/flows/shopper-step-up.ts.
   */
  stepUpIdentityRefusalsMax: 5,
  /**
   * Promotion codes a hosted-checkout page may have refused (unknown, expired, used up …) before it takes no more
   * (decision 0062): room for typing mistakes, not for trying words until one works.
   */
  promotionCodeRefusalsMax: 10,
  statementDescriptorLengthMin: 5,
  statementDescriptorLengthMax: 22,
  statementDescriptorSuffixLengthMax: 22,
  emailLengthMax: 800,
  /** A merchant's name, as staff and the operator give it. */
  merchantNameLengthMax: 100,
  /** Largest amount in minor units, as Stripe: eight digits. */
  amountMinorMax: 99_999_999,
  /** `Idempotency-Key` header length, as Stripe. */
  idempotencyKeyLengthMax: 255,
  /** How long a looked-up API key is trusted without asking the database again (bounds revocation delay). */
  apiKeyCacheTtlMs: 10 * 1000,
  apiKeyCacheEntriesMax: 10_000,
  /**
   * The audit sealer passes a gap in the record sequence (a rolled-back transaction's number) once the record
   * after it is this old: no transaction that could still fill the gap runs this long.
   */
  auditGapGraceMs: 5 * 60 * 1000,
  /** How often the sealer signs a checkpoint of the audit chain (when anything was sealed since the last). */
  auditCheckpointEveryMs: 60 * 1000,
  /** Nonces of signed requests are kept this long: more than the 5-minute window on either side. */
  requestNonceRetentionMs: 15 * 60 * 1000,
  /** How long a rolled API key may keep working beside its successor. */
  apiKeyRollOverlapHoursMax: 7 * 24,
  /** Staff passwords: length bounds, and how many earlier passwords a new one may not repeat. */
  staffPasswordLengthMin: 12,
  staffPasswordLengthMax: 256,
  staffPasswordHistory: 4,
  /** Failed logins (password or second factor) that lock a staff account, and for how long (PCI DSS 8.3.4). */
  staffLockoutFailures: 10,
  staffLockoutMs: 30 * 60 * 1000,
  /** A staff session ends after this long without a request (PCI DSS 8.2.8), and this long after login anyway. */
  staffSessionIdleMs: 15 * 60 * 1000,
  staffSessionLifetimeMs: 12 * 60 * 60 * 1000,
  /** Time to give the second factor after the password. */
  staffMfaPendingMs: 5 * 60 * 1000,
  /** A WebAuthn challenge (passkey registration or sign-in) is answered within this, once. */
  staffWebauthnChallengeMs: 5 * 60 * 1000,
  /** Sensitive actions need a password and code given this recently. */
  staffReauthenticationMs: 5 * 60 * 1000,
  /** An enrollment link works once, within this time. */
  staffEnrollmentMs: 72 * 60 * 60 * 1000,
  /** Recovery codes issued at enrollment (each works once). */
  staffRecoveryCodes: 10,
  /** TOTP: codes of the previous and next 30-second step are accepted too (clock drift, typing time). */
  totpToleranceSeconds: 30,
  /** A four-eyes request not decided within this time can no longer be approved. */
  approvalLifetimeMs: 24 * 60 * 60 * 1000,
  /** Largest request body the staff API accepts (its requests are a few hundred bytes). */
  staffRequestBodyBytesMax: 64 * 1024,
  /**
   * A staff refund that takes a payment's refunded total above this amount (minor units of its currency) needs a
   * second person's approval.
   */
  fourEyesRefundAboveDefault: 100_000,
  /** Requests per second one API key may make (Stripe's live-mode budget), and one client address. */
  rateLimitPerKeyDefault: 100,
  rateLimitPerAddressDefault: 200,
  /** Rate-limit counters kept in memory when there is no Redis; the least recently used go first. */
  rateLimitLocalEntriesMax: 20_000,
  /** Redis (shared rate limits) must connect and answer quickly, or the request goes on unlimited. */
  redisConnectTimeoutMs: 1_000,
  redisCommandTimeoutMs: 250,
  /** Idempotency keys are kept at least this long before the reaper may remove them. */
  idempotencyKeyRetentionMs: 24 * 60 * 60 * 1000,
  /** A claimed key whose request has not finished after this long is considered abandoned (crash). */
  idempotencyKeyLockMs: 90 * 1000,
  /** List endpoints: Stripe's `limit` bounds. */
  listLimitDefault: 10,
  listLimitMax: 100,
  /** Items of a list embedded in an object (a PaymentIntent's `charges`, a Charge's `refunds`), newest first, as Stripe's. */
  embeddedListItemsMax: 10,
  /** `expand[]` entries per request and nesting depth, as Stripe. */
  expandEntriesMax: 20,
  expandDepthMax: 4,
  /** Form-encoded bodies: nesting depth and array length the parser accepts. */
  formDepthMax: 5,
  formArrayLengthMax: 100,
  formParametersMax: 1000,
  /** A call to a provider that has not answered after this long has an unknown outcome. */
  providerCallTimeoutMs: 30 * 1000,
  /** A card authorization can be captured for this long, then it expires and is released. */
  authorizationHoldMs: 7 * 24 * 60 * 60 * 1000,
  /** Captured card funds become available for payout this long after capture (Stripe's test mode: 2 days). */
  settlementDelayMs: 2 * 24 * 60 * 60 * 1000,
  /** Time the merchant has to answer a dispute with evidence. */
  disputeEvidenceWindowMs: 7 * 24 * 60 * 60 * 1000,
  /** How long a cardholder has to finish a 3-D Secure challenge before the attempt is ended. */
  threeDSecureWindowMs: 15 * 60 * 1000,
  /** The largest provider notification accepted (Alipay's and WeChat Pay's are a few kilobytes). */
  providerNotificationBytesMax: 64 * 1024,
  /** Payment limits a merchant can have per mode. */
  paymentLimitsPerMerchantMax: 100,
  /** How long a shopper has to pay at Alipay or WeChat Pay before the trade is closed. */
  walletPaymentWindowMs: 30 * 60 * 1000,
  /**
   * While a wallet payment waits for the shopper, the provider is asked about it after this long, then at
   * doubling intervals up to the maximum (a notification usually arrives first; a lost one is found this way).
   */
  walletSyncFirstMs: 5 * 1000,
  walletSyncMaxMs: 5 * 60 * 1000,
  /** Pending payments a notification that failed verification can bring forward, at most, per interval. */
  walletForgedNotificationBatchMax: 20,
  /** The sync worker's lease on a pending wallet payment: longer than its slowest round of provider calls. */
  walletSyncLeaseMs: 5 * 60 * 1000,
  /** A trade is closed this long after its time to pay ended, so that clocks a little apart cannot reopen it. */
  walletCloseGraceMs: 2 * 60 * 1000,
  /**
   * Questions and refund tries for a late wallet payment (one paid after its attempt failed) with no final answer,
   * at the sync worker's backoff (about 45 minutes in all), before it is handed to a person (doctor, /metrics).
   */
  walletLateTriesMax: 12,
  /** A pending wallet payment still unresolved this long after its window is counted as stuck (an alert). */
  walletStuckAfterMs: 10 * 60 * 1000,
  /** An attempt or capture still in flight after this long is resolved by asking the provider. */
  inFlightRecoveryAfterMs: 60 * 1000,
  /** Webhooks: URL length, endpoints per merchant, answer deadline, how much of an answer is kept. */
  webhookUrlLengthMax: 2048,
  webhookEndpointsPerMerchantMax: 16,
  webhookTimeoutMs: 10 * 1000,
  webhookResponseBytesMax: 4096,
  /** Deliveries sent at once by one process, and how long one is leased to the process sending it. */
  webhookConcurrencyMax: 16,
  webhookLeaseMs: 60 * 1000,
  /** How often the deliverer looks for due deliveries when it found none. */
  webhookPollIntervalMs: 250,
  /**
   * Delays before each retry of a failed delivery: exponential, then every 12 hours, for 3 days in all, as
   * Stripe does; after the last the delivery is marked failed (it can still be resent by hand).
   */
  webhookRetryDelaysMs: [60_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 5 * 3_600_000, 10 * 3_600_000, 12 * 3_600_000,
    12 * 3_600_000, 12 * 3_600_000, 12 * 3_600_000, 12 * 3_600_000] as readonly number[],
  /** After a secret is rolled, the old one keeps signing for at most this long. */
  webhookSecretRollMaxMs: 7 * 24 * 3_600_000,
  /** Rows a background job handles per batch, and batches per run. */
  jobBatchSize: 100,
  /** Velocity entries are kept past the longest window (7 days) by a day, for late arrivals; then removed. */
  velocityRetentionMs: 8 * 86_400_000,
  jobBatchesPerRunMax: 50,
  /** How often background jobs wake up. */
  jobIntervalMs: 5 * 1000,
  /** Database pool size for PostgreSQL (PGlite is a single connection). */
  databasePoolSizeDefault: 10,
  /** How long a request waits for a pooled connection before it fails with 503. */
  databaseConnectTimeoutMs: 5 * 1000,
  /** How long a request waits for the embedded database's one session before it fails with 503. */
  embeddedSessionWaitMs: 30 * 1000,
  /** Longest any single SQL statement may run. */
  databaseStatementTimeoutMs: 15 * 1000,
  /** Retries of a transaction that failed with a serialization failure or deadlock. */
  transactionRetriesMax: 5,
  /** Time a graceful shutdown waits for in-flight requests. */
  shutdownGraceMs: 10 * 1000,
  /**
   * Tries at locking the embedded data directory while its lock changes hands (released, or taken over from a dead
   * process by another), and the wait before looking again while another process takes a stale lock over.
   */
  dataDirLockAttemptsMax: 50,
  dataDirLockRetryWaitMs: 2,
  /** Takeovers of one stale lock whose claimant was itself killed during the takeover, before giving up. */
  dataDirLockTakeoverClaimsMax: 8,
} as const;
