import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/**
 * The tables as Kysely sees them. Column types follow the migrations in `migrations/`; bigint columns arrive as
 * JavaScript `bigint` on both PostgreSQL and PGlite (see `open-database.ts`).
 */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface MerchantsTable {
  id: string;
  name: string;
  default_api_version: string;
  created_at: Timestamp;
  /** Whether its servers may send card numbers to the live API with a secret or restricted key (migration 0060). */
  live_raw_card_data: ColumnType<boolean, boolean | undefined, boolean>;
}

/** A merchant's risk settings in one mode; a mode without a row has the defaults (UTC, none, none). */
export interface MerchantRiskSettingsTable {
  merchant_id: string;
  livemode: boolean;
  time_zone: Generated<string>;
  /** The merchant's category code (ISO 18245, four digits), a model input; null until set. */
  category: ColumnType<string | null, string | null | undefined, string | null>;
  /** Hosted checkout payments at or above this many US dollars need the shopper's step-up; null: only when risk asks. */
  step_up_above_usd: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ApiKeysTable {
  id: string;
  merchant_id: string;
  kind: 'secret' | 'publishable' | 'restricted';
  livemode: boolean;
  key_hash: Buffer;
  key_last4: string;
  created_at: Timestamp;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  /** A restricted key's powers, resource by resource; `{}` for the other kinds. */
  permissions: ColumnType<Partial<Record<string, 'read' | 'write'>>, string | undefined, string>;
  /** Client addresses or CIDR ranges the key may be used from; null: anywhere. */
  allowed_addresses: ColumnType<string[] | null, string | null | undefined, string | null>;
  name: ColumnType<string | null, string | null | undefined, string | null>;
  /** The key that replaced this one when it was rolled. */
  rolled_to: ColumnType<string | null, string | null | undefined, string | null>;
  /** Sealed signing secret (platform/secret-box.ts) of a key whose requests must be signed; null: no signing. */
  signing_secret_ciphertext: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
}

export interface AuditSealsTable {
  seq: bigint;
  hash: Buffer;
  sealed_at: ColumnType<Date, Date | undefined, never>;
}

export interface AuditChainHeadTable {
  id: ColumnType<boolean, never, never>;
  seq: bigint;
  hash: Buffer;
  /** Which chain this database holds: names the copy of its checkpoints kept outside the database. */
  chain_id: ColumnType<string, never, never>;
}

export interface InstallationTable {
  id: ColumnType<boolean, never, never>;
  /** A check value of `keys/instance.key` (platform/instance-secret.ts), set by the first start. */
  instance_key_check: string | null;
}

export interface AuditCheckpointsTable {
  seq: bigint;
  head_hash: Buffer;
  created_at: Date;
  key_id: string;
  signature: Buffer;
}

export interface RequestNoncesTable {
  key_id: string;
  nonce: string;
  seen_at: Date;
}

export interface CardFacts {
  brand: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  country: string | null;
  funding: string;
  fingerprint: string;
  networks: string[];
  three_d_secure_supported: boolean;
  /** The card's first six digits (its issuer), for risk; not shown on the PaymentMethod. */
  bin?: string;
}

export type PaymentMethodType = 'card' | 'alipay' | 'wechat_pay';

export interface PaymentMethodsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  type: PaymentMethodType;
  /** Card facts for a card; null for every other type. */
  card: Json<CardFacts | null>;
  test_card: string | null;
  vault_card_id: ColumnType<string | null, string | null | undefined, string | null>;
  billing_details: Json<Record<string, unknown>>;
  customer_id: string | null;
  metadata: Json<Record<string, string>>;
  created_at: Timestamp;
  /** The one PaymentIntent a card that belongs to no customer may be used with: the first that tried it (migration 0037). */
  first_payment_intent_id: string | null;
  /** When the card was detached from its customer (or the customer deleted): it pays for nothing more (migration 0039). */
  detached_at: Timestamp | null;
  /** Whether it may be shown to its customer again to pay with (Stripe's `allow_redisplay`, migration 0070). */
  allow_redisplay: ColumnType<AllowRedisplay, AllowRedisplay | undefined, AllowRedisplay>;
}

export type AllowRedisplay = 'always' | 'limited' | 'unspecified';

export interface PaymentIntentsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  amount: bigint;
  currency: string;
  status: string;
  capture_method: 'automatic' | 'automatic_async' | 'manual';
  confirmation_method: 'automatic' | 'manual';
  payment_method_id: string | null;
  payment_method_types: Json<string[]>;
  automatic_payment_methods: Json<Record<string, unknown> | null>;
  client_secret: string;
  description: string | null;
  metadata: Json<Record<string, string>>;
  receipt_email: string | null;
  customer_id: string | null;
  statement_descriptor: string | null;
  statement_descriptor_suffix: string | null;
  setup_future_usage: string | null;
  /** `payment_method_options[card]`: override the top-level fields for card payments (migration 0053). */
  card_capture_method: 'manual' | null;
  card_setup_future_usage: 'none' | 'on_session' | 'off_session' | null;
  /**
   * What a confirmation applies (migration 0054): the card's `request_three_d_secure`, WeChat Pay's `client` and the
   * shopper's `openid`; null when not given (`automatic`, a QR code).
   */
  card_request_three_d_secure: 'automatic' | 'any' | 'challenge' | null;
  /** `payment_method_options[card][request_incremental_authorization]` (migration 0064); null when not given. */
  card_request_incremental_authorization: ColumnType<'if_available' | 'never' | null, 'if_available' | 'never' | null | undefined, 'if_available' | 'never' | null>;
  wechat_pay_client: 'web' | 'mobile_web' | 'jsapi' | null;
  wechat_pay_openid: string | null;
  shipping: Json<Record<string, unknown> | null>;
  return_url: string | null;
  amount_capturable: ColumnType<bigint, bigint | undefined, bigint>;
  amount_received: ColumnType<bigint, bigint | undefined, bigint>;
  canceled_at: Date | null;
  cancellation_reason: string | null;
  last_payment_error: Json<Record<string, unknown> | null>;
  latest_charge_id: string | null;
  /** The review the payment's charge was held for (`review`), once one opened; kept after it is closed. */
  review_id: ColumnType<string | null, string | null | undefined, string | null>;
  next_action: Json<Record<string, unknown> | null>;
  operation_in_flight: 'capture' | 'cancel' | 'increment' | null;
  operation_started_at: Date | null;
  operation_amount: bigint | null;
  operation_reason: string | null;
  operation_idempotency_key_id: bigint | null;
  version: Generated<bigint>;
}

export interface ChargesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  payment_intent_id: string;
  payment_method_id: string;
  provider: string;
  provider_idempotency_key: string;
  provider_reference: string | null;
  idempotency_key_id: bigint | null;
  amount: bigint;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  amount_authorized: ColumnType<bigint, bigint | undefined, bigint>;
  amount_captured: ColumnType<bigint, bigint | undefined, bigint>;
  amount_released: ColumnType<bigint, bigint | undefined, bigint>;
  amount_refunded: ColumnType<bigint, bigint | undefined, bigint>;
  captured: ColumnType<boolean, boolean | undefined, boolean>;
  capture_before: Date | null;
  payment_method_details: Json<Record<string, unknown>>;
  outcome: Json<Record<string, unknown> | null>;
  failure_code: string | null;
  failure_message: string | null;
  decline_code: string | null;
  description: string | null;
  metadata: Json<Record<string, string>>;
  receipt_email: string | null;
  statement_descriptor: string | null;
  statement_descriptor_suffix: string | null;
  available_on: Date | null;
  settled: ColumnType<boolean, boolean | undefined, boolean>;
  amount_refunding: ColumnType<bigint, bigint | undefined, bigint>;
  disputed: ColumnType<boolean, boolean | undefined, boolean>;
  /** The merchant's report on the charge (Stripe's `fraud_details[user_report]`), null when none (migration 0058). */
  fraud_user_report: ColumnType<'fraudulent' | 'safe' | null, 'fraudulent' | 'safe' | null | undefined, 'fraudulent' | 'safe' | null>;
  /** When the provider sync worker next asks the provider about this pending attempt (wallets). */
  provider_sync_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  provider_sync_count: ColumnType<number, number | undefined, number>;
  /** When the shopper's time to pay at the provider ends (wallets). */
  action_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** What the attempt was made with, for velocity and risk: client address, device, email. */
  risk_facts: Json<RiskFacts | null>;
  /** The risk engine's decision for this attempt, as the charge shows it (risk/decision-summary.ts). */
  risk: ColumnType<ChargeRisk | null, string | null | undefined, string | null>;
  /** The review this attempt's payment is held in, if any. */
  review_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The PaymentIntent's customer, and the payment method's billing details, when the attempt was made (0038). */
  customer_id: ColumnType<string | null, string | null | undefined, string | null>;
  billing_details: Json<Record<string, unknown>>;
  /** The PaymentIntent's shipping when the attempt was made (migration 0046). */
  shipping: Json<Record<string, unknown> | null>;
  /** Tries to raise the hold (declines included), and those approved (migration 0064). */
  increment_attempts: ColumnType<number, number | undefined, number>;
  authorization_increments: ColumnType<number, number | undefined, number>;
  /** The latest try to raise the hold (migration 0064). */
  increment_try: ColumnType<IncrementTry | null, string | null | undefined, string | null>;
}

/**
 * A try to raise a hold: what it asked, what it took from the daily amount limits, and why it failed if it did. It is
 * always the charge's latest, numbered `increment_attempts`.
 */
export interface IncrementTry {
  amount: string;
  takes: Array<{ limit_id: string; subject_key: string; window_key: string; delta: string }>;
  failure?: { code: 'card_declined' | 'incremental_authorization_unavailable'; message: string; decline_code: string | null; advice_code: string | null };
}

export interface ChargeRisk {
  decision: string;
  action: 'allow' | 'request_step_up' | 'review' | 'block';
  risk_score: number | null;
  risk_level: 'normal' | 'elevated' | 'highest' | 'not_assessed';
  rule: string | null;
  reasons: string[];
  degraded: boolean;
  /** How a step-up was carried out: 3-D Secure, the wallet's own authentication, or (off session) a review. */
  step_up?: 'three_d_secure' | 'provider_authentication' | 'held_for_review';
  /** The shopper's own confirmation on the hosted checkout, besides (never instead of) the step-up above. */
  shopper_step_up?: ShopperStepUpMethod;
}

export interface RiskDecisionsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  charge_id: string;
  payment_intent_id: string;
  created_at: Date;
  action: ChargeRisk['action'];
  risk_score: number | null;
  risk_level: ChargeRisk['risk_level'];
  rule_id: string | null;
  rule_set_id: string | null;
  model_version: string | null;
  degraded: boolean;
  inputs: Json<Record<string, unknown>>;
  result: Json<Record<string, unknown>>;
  elapsed_us: number;
}

export interface ReviewsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  charge_id: string;
  payment_intent_id: string;
  created_at: Date;
  open: boolean;
  opened_reason: 'rule' | 'model';
  reasons: Json<string[]>;
  closed_reason: 'approved' | 'canceled' | 'refunded_as_fraud' | 'disputed' | null;
  closed_at: Date | null;
  closed_by: string | null;
}

export interface CheckoutLineItem {
  name: string;
  unit_amount: number;
  quantity: number;
  amount_total: number;
  /** The catalogue price sold (`line_items[][price]`), absent for an item given with `price_data`. */
  price_id?: string;
  /** The catalogue product of an item given with `price_data[product]` or `price`. */
  product_id?: string;
  /** From `price_data[product_data]`: shown on the hosted page and kept with the order. */
  description?: string;
  images?: string[];
  /** The bounds the shopper may set the quantity within on the page (`adjustable_quantity`, decision 0053). */
  adjustable?: { minimum: number; maximum: number };
  /** The merchant's metadata for this item (`line_items[][metadata]`), shown on the line item. */
  metadata?: Record<string, string>;
  /** An item the shopper may add (`optional_items`, decision 0061): the quantity it is added with; `quantity` is 0 until then. */
  optional?: { quantity: number };
}

/** A delivery estimate's bound, as Stripe's: a number of units of time. */
export interface DeliveryEstimateBound {
  unit: 'business_day' | 'day' | 'hour' | 'month' | 'week';
  value: number;
}
export interface DeliveryEstimate {
  minimum?: DeliveryEstimateBound;
  maximum?: DeliveryEstimateBound;
}

/** A shipping rate a Checkout Session offers (migration 0062): its id, and what the page shows of it. */
export interface CheckoutShippingOption {
  shipping_rate: string;
  display_name: string;
  shipping_amount: number;
  delivery_estimate: DeliveryEstimate | null;
}

/** What the hosted page collected from the shopper (migration 0061), each only when the session asked for it. */
export interface CheckoutCollected {
  billing?: { name: string; address: Record<string, string> };
  shipping?: { name: string; address: Record<string, string> };
  phone?: string;
  /** The shopper's email, asked on a payment link's session, which has none from the merchant (decision 0054). */
  email?: string;
  /** The shopper ticked the terms the session asks them to accept (`consent_collection[terms_of_service]`). */
  terms_of_service?: 'accepted';
  /** Whether the shopper asked for the merchant's offers (`consent_collection[promotions]=auto`). */
  promotions?: 'opt_in' | 'opt_out';
  /** What the shopper gave in the merchant's own fields (`custom_fields`), by key; an optional field left empty is absent. */
  custom_fields?: Record<string, string>;
  /** Whether the shopper asked to save the card they pay with (`saved_payment_method_options[payment_method_save]`). */
  save_payment_method?: 'accepted' | 'declined';
}

/** What a session recovering an expired one is made with (decision 0064): its parameters, as given. */
export interface CheckoutRecovery {
  allow_promotion_codes: boolean;
  params: Record<string, unknown>;
}

/** A session's `saved_payment_method_options` (decision 0063), as given. */
export interface CheckoutSavedMethodOptions {
  payment_method_save?: 'enabled' | 'disabled';
  /** Only `disabled` is taken (the page lets no one remove saved cards); kept to show it back. */
  payment_method_remove?: 'disabled';
  allow_redisplay_filters?: AllowRedisplay[];
}

/** Bounds of a text or numeric custom field, and what it is filled in with at first. */
export interface CheckoutCustomFieldBounds {
  minimum_length?: number;
  maximum_length?: number;
  default_value?: string;
}

/** One of a Checkout Session's `custom_fields` (decision 0060): a field of the merchant's own, as Stripe takes it. */
export interface CheckoutCustomField {
  key: string;
  label: { type: 'custom'; custom: string };
  type: 'dropdown' | 'numeric' | 'text';
  optional?: boolean;
  dropdown?: { options: Array<{ label: string; value: string }>; default_value?: string };
  numeric?: CheckoutCustomFieldBounds;
  text?: CheckoutCustomFieldBounds;
}

/** The verb of a Checkout Session's pay button (Stripe's `submit_type`; `auto` is `pay`). */
export type CheckoutSubmitType = 'auto' | 'book' | 'donate' | 'pay';

/** A Checkout Session's `custom_text`: the merchant's messages, each shown in its place on the page (decision 0059). */
export type CheckoutCustomText = Partial<Record<'after_submit' | 'shipping_address' | 'submit' | 'terms_of_service_acceptance', { message: string }>>;

/** A Checkout Session's `consent_collection`, as given (decision 0059). */
export interface CheckoutConsentCollection {
  terms_of_service?: 'none' | 'required';
  promotions?: 'auto' | 'none';
  payment_method_reuse_agreement?: { position: 'auto' | 'hidden' };
}

/** A Checkout Session's `payment_method_options`: only what it was given (Stripe's card options Coffer takes). */
export interface CheckoutPaymentMethodOptions {
  card?: {
    capture_method?: 'manual'; setup_future_usage?: 'none' | 'on_session' | 'off_session'; request_incremental_authorization?: 'if_available' | 'never';
    request_three_d_secure?: 'any' | 'automatic' | 'challenge';
  };
}

export interface CheckoutSessionsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Date;
  updated_at: Date;
  expires_at: Date;
  status: 'open' | 'complete' | 'expired';
  payment_status: 'unpaid' | 'paid';
  payment_intent_id: string;
  amount_total: bigint;
  currency: string;
  line_items: Json<CheckoutLineItem[]>;
  success_url: string;
  cancel_url: string | null;
  customer_email: string | null;
  payment_method_types: Json<string[]>;
  metadata: Json<Record<string, string>>;
  locale: string | null;
  completed_at: Date | null;
  kind: ColumnType<'checkout' | 'payment_intent', 'checkout' | 'payment_intent' | undefined, never>;
  wechat_openid: string | null;
  /** The merchant's reference for the order (migration 0046). */
  client_reference_id: string | null;
  /** What the session learned of its customer when it completed (migration 0050). */
  customer_details: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  /** Step-up identities refused as not the merchant's (`not_on_file`) on this page (migration 0052). */
  step_up_identity_refusals: ColumnType<number, number | undefined, number>;
  /** The existing customer the session was made for; null for a PaymentIntent's own page (migration 0055). */
  customer_id: string | null;
  /** The card options the session was made with, as Stripe shows them (migration 0055). */
  payment_method_options: ColumnType<CheckoutPaymentMethodOptions, string | undefined, string>;
  /** Stripe's `billing_address_collection` as given: null (not given), 'auto' (not asked) or 'required' (migration 0061). */
  billing_address_collection: ColumnType<'auto' | 'required' | null, 'auto' | 'required' | null | undefined, 'auto' | 'required' | null>;
  /** The countries a shipping address may be in (`shipping_address_collection[allowed_countries]`); null: none asked. */
  shipping_countries: ColumnType<string[] | null, string | null | undefined, string | null>;
  phone_number_collection: ColumnType<boolean, boolean | undefined, boolean>;
  /** What the shopper gave on the page with their last confirmation: the addresses and phone asked for. */
  collected: ColumnType<CheckoutCollected | null, string | null | undefined, string | null>;
  /** Stripe's `customer_creation` as given (migration 0065): null when not given (`if_required`). */
  customer_creation: ColumnType<'always' | 'if_required' | null, 'always' | 'if_required' | null | undefined, 'always' | 'if_required' | null>;
  /** Stripe's `submit_type`, as given (migration 0066); null when not given. */
  submit_type: ColumnType<CheckoutSubmitType | null, CheckoutSubmitType | null | undefined, CheckoutSubmitType | null>;
  /** The merchant's messages on the page (migration 0066); null when none were given. */
  custom_text: ColumnType<CheckoutCustomText | null, string | null | undefined, string | null>;
  /** What the page asks the shopper to consent to (migration 0066); null when not given. */
  consent_collection: ColumnType<CheckoutConsentCollection | null, string | null | undefined, string | null>;
  /** The merchant's own fields the page asks (migration 0067), up to three; null when none were given. */
  custom_fields: ColumnType<CheckoutCustomField[] | null, string | null | undefined, string | null>;
  /** The shipping rates the session offers, as they were when it was made (migration 0062); null: none. */
  shipping_options: ColumnType<CheckoutShippingOption[] | null, string | null | undefined, string | null>;
  /** The offered rate the shopper has chosen (the first until they choose another); null when none is offered. */
  shipping_rate_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The chosen rate's amount, part of `amount_total` (the items are the rest). */
  amount_shipping: ColumnType<bigint, bigint | undefined, bigint>;
  /** The payment link the session was made from (migration 0063); null for one made through the API. */
  payment_link_id: ColumnType<string | null, string | null | undefined, never>;
  /** The discount applied (migration 0069); null: none. */
  discount: ColumnType<CheckoutDiscount | null, string | null | undefined, string | null>;
  discount_coupon_id: ColumnType<string | null, string | null | undefined, string | null>;
  discount_promotion_code_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** What the discount takes off the items, part of `amount_total` (items - discount + shipping). */
  amount_discount: ColumnType<bigint, bigint | undefined, bigint>;
  /** Whether the shopper may type a promotion code on the page. */
  allow_promotion_codes: ColumnType<boolean, boolean | undefined, boolean>;
  /** Codes the page refused; past `limits.promotionCodeRefusalsMax` it takes no more (migration 0069). */
  promotion_code_refusals: ColumnType<number, number | undefined, number>;
  /** What the page offers about saved cards (migration 0070); null when not given. */
  saved_payment_method_options: ColumnType<CheckoutSavedMethodOptions | null, string | null | undefined, string | null>;
  /** `after_expiration[recovery]` (migration 0071): what a session recovering this one is made with; null: none. */
  recovery: ColumnType<CheckoutRecovery | null, string | null | undefined, string | null>;
  /** Given when the session expires with recovery enabled: the address's token, the address, and until when it works. */
  recovery_token: ColumnType<string | null, string | null | undefined, string | null>;
  recovery_url: ColumnType<string | null, string | null | undefined, string | null>;
  recovery_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** The session this one was made to recover (from its recovery address). */
  recovered_from: ColumnType<string | null, string | null | undefined, never>;
}

export interface SupportCasesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Date;
  checkout_session_id: string;
  payment_intent_id: string;
  contact: string | null;
  message: string;
  status: 'open' | 'closed';
}

export interface ShopperMessagesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  status: ColumnType<'pending' | 'sent' | 'failed', 'pending' | 'sent' | 'failed' | undefined, 'pending' | 'sent' | 'failed'>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  sent_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: ColumnType<Date | null, Date | null | undefined, never>;
  seq: Generated<bigint>;
  created_at: Date;
  channel: 'email' | 'sms';
  recipient: string;
  subject: string;
  body: string;
  reference: string;
}

/** How a shopper confirmed a payment on the hosted checkout. */
export type ShopperStepUpMethod = 'sms_code' | 'email_code' | 'payment_password' | 'passkey';

export interface ShopperStepUpsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  checkout_session_id: string;
  method: ShopperStepUpMethod | 'passkey_registration';
  destination: string;
  code_hash: string;
  created_at: Date;
  expires_at: Date;
  attempts: ColumnType<number, number | undefined, number>;
  verified_at: Date | null;
  amount: bigint;
  currency: string;
  payment_intent_id: string | null;
}

export interface ShopperCredentialsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  identity: string;
  kind: 'payment_password' | 'passkey';
  password_hash: string | null;
  credential_id: string | null;
  public_key: Buffer | null;
  counter: bigint | null;
  transports: ColumnType<string[] | null, string | null, string | null>;
  created_at: Date;
  last_used_at: Date | null;
}

export interface ShopperPasswordTriesTable {
  merchant_id: string;
  livemode: boolean;
  identity: string;
  failed_attempts: number;
  locked_at: Date | null;
  updated_at: Date;
}

export interface RiskLabelsTable {
  charge_id: string;
  /** A review's outcome, a dispute, or the merchant's own report on the charge (`fraud_details`). */
  source: 'review' | 'dispute' | 'report';
  merchant_id: string;
  livemode: boolean;
  fraud: boolean;
  labeled_at: Date;
}

export type LimitSubject = 'merchant' | 'customer' | 'card' | 'device' | 'client_address';
export type LimitKind = 'amount_min' | 'amount_max' | 'amount_per_day' | 'count_per_hour' | 'count_per_day';

export interface PaymentLimitsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  subject: LimitSubject;
  kind: LimitKind;
  /** For amount kinds: the currency the value is in (payments in other currencies are not counted by it). */
  currency: string | null;
  value: bigint;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export interface PaymentLimitCountersTable {
  limit_id: string;
  subject_key: string;
  window_key: string;
  merchant_id: string;
  amount: bigint;
  count: number;
}

export interface RiskRuleSetsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  version: number;
  rules: Json<Array<{ id: string; text: string; mode: 'active' | 'shadow' }>>;
  created_at: Date;
  created_by: string;
}

export interface VelocityEntriesTable {
  merchant_id: string;
  livemode: boolean;
  dimension: string;
  key: string;
  occurred_at: Date;
  outcome: string;
  amount: bigint;
  currency: string;
  charge_id: string;
}

export interface RiskFacts {
  client_address: string | null;
  device: string | null;
  email: string | null;
}

export interface ProviderNotificationsTable {
  provider: string;
  notification_id: string;
  livemode: boolean;
  reference: string;
  received_at: ColumnType<Date, Date | undefined, never>;
}

export type WalletLatePaymentStatus = 'watching' | 'unpaid' | 'refunding' | 'refunded' | 'refund_failed';

/** A wallet payment made after Coffer recorded its attempt as failed, and its way back to the shopper (migration 0033). */
export interface WalletLatePaymentsTable {
  charge_id: string;
  merchant_id: string;
  livemode: boolean;
  provider: 'alipay' | 'wechat_pay';
  status: WalletLatePaymentStatus;
  amount: bigint;
  currency: string;
  provider_reference: string | null;
  refund_reference: string | null;
  failure_reason: string | null;
  tries: ColumnType<number, number | undefined, number>;
  next_try_at: Date;
  created_at: Date;
  updated_at: Date;
}

export interface DisputesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  charge_id: string;
  payment_intent_id: string;
  amount: bigint;
  fee: bigint;
  currency: string;
  status: 'warning_needs_response' | 'warning_under_review' | 'warning_closed' | 'needs_response' | 'under_review' | 'won' | 'lost' | 'prevented';
  reason: string;
  network_reason_code: string | null;
  evidence: Json<Record<string, string>>;
  evidence_due_by: Date;
  submission_count: Generated<number>;
  metadata: Json<Record<string, string>>;
  provider_reference: string;
  /** The merchant account the funds were withdrawn from; null while the dispute is an inquiry (nothing withdrawn). */
  debited_account: 'merchant_incoming' | 'merchant_available' | null;
  /** The disputed charge's card brand and network (migration 0049). */
  card_brand: ColumnType<string | null, string | null | undefined, string | null>;
  card_network: ColumnType<string | null, string | null | undefined, string | null>;
}

export type SandboxDisputeStatus = 'warning_needs_response' | 'warning_under_review' | 'warning_closed' | 'needs_response' | 'under_review' | 'won' | 'lost';

export interface SandboxCardDisputesTable {
  id: string;
  payment_id: string;
  amount: bigint;
  status: SandboxDisputeStatus;
  reason: string;
  evidence: Json<Record<string, string>>;
  created_at: Timestamp;
}

export interface RefundsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  charge_id: string;
  payment_intent_id: string;
  amount: bigint;
  currency: string;
  status: 'pending' | 'requires_action' | 'succeeded' | 'failed' | 'canceled';
  reason: 'duplicate' | 'fraudulent' | 'requested_by_customer' | 'expired_uncaptured_charge' | null;
  failure_reason: string | null;
  metadata: Json<Record<string, string>>;
  provider_reference: string | null;
  idempotency_key_id: bigint | null;
  debited_account: 'merchant_incoming' | 'merchant_available' | null;
  /** The charge's customer and payment method when the refund was made (migration 0048). */
  customer_id: ColumnType<string | null, string | null | undefined, string | null>;
  payment_method_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SandboxCardRefundsTable {
  id: string;
  idempotency_key: string;
  payment_id: string | null;
  reference: string;
  amount: bigint;
  status: 'succeeded' | 'failed' | 'abandoned';
  response: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

export interface SandboxCardNotificationsTable {
  id: string;
  due_at: Date;
  payload: string;
  attempts: Generated<number>;
  delivered_at: Date | null;
}

export interface IdempotencyKeysTable {
  id: Generated<bigint>;
  merchant_id: string;
  livemode: boolean;
  key: string;
  request_method: string;
  request_path: string;
  request_hash: string;
  original_request_id: string;
  locked_at: Date | null;
  response_status: number | null;
  response_body: string | null;
  recovery_point: string | null;
  created_at: Timestamp;
  finished_at: Date | null;
  /** Keys of publishable keys are a key space apart from those of secret and restricted keys. */
  publishable: Generated<boolean>;
  /** The API version the stored response was shaped for; null for responses stored before it was kept. */
  api_version: string | null;
}

export interface EventsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  type: string;
  object_id: string;
  api_version: string;
  request_id: string | null;
  idempotency_key: string | null;
  payload: ColumnType<unknown, string, never>;
  /** The event in the other API shape, kept only while an endpoint of the merchant asks for that shape. */
  other_shape: ColumnType<'current' | 'legacy' | null, 'current' | 'legacy' | null | undefined, never>;
  other_payload: ColumnType<unknown, string | null | undefined, never>;
  relayed: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface AuditLogTable {
  seq: Generated<bigint>;
  id: string;
  occurred_at: Timestamp;
  merchant_id: string | null;
  livemode: boolean | null;
  actor_type: 'api_key' | 'staff' | 'system' | 'shopper';
  actor_id: string;
  action: string;
  object_type: string | null;
  object_id: string | null;
  outcome: 'success' | 'failure';
  request_id: string | null;
  origin: string | null;
  details: Json<Record<string, unknown>>;
}

export interface LedgerAccountsTable {
  id: Generated<bigint>;
  merchant_id: string;
  livemode: boolean;
  currency: string;
  code: string;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
  created_at: Timestamp;
}

export interface LedgerTransfersTable {
  id: Generated<bigint>;
  transfer_key: string;
  kind: 'single' | 'pending' | 'post_pending' | 'void_pending';
  reason: string;
  debit_account_id: bigint;
  credit_account_id: bigint;
  currency: string;
  amount: bigint;
  pending_id: bigint | null;
  merchant_id: string;
  livemode: boolean;
  payment_intent_id: string | null;
  charge_id: string | null;
  created_at: Timestamp;
}

export interface SandboxCardPaymentsTable {
  id: string;
  idempotency_key: string;
  request_hash: string;
  merchant_reference: string;
  amount: bigint;
  currency: string;
  test_card: string;
  status: 'requires_action' | 'authorized' | 'captured' | 'declined' | 'voided' | 'abandoned';
  amount_captured: bigint;
  response: Json<Record<string, unknown>>;
  created_at: Timestamp;
  updated_at: Timestamp;
  refund_fails: ColumnType<boolean, boolean | undefined, boolean>;
  disputes_after_capture: ColumnType<boolean, boolean | undefined, boolean>;
  dispute_is_inquiry: ColumnType<boolean, boolean | undefined, boolean>;
  dispute_reason: ColumnType<'fraudulent' | 'product_not_received', 'fraudulent' | 'product_not_received' | undefined, never>;
  /** 3-D Secure (0021): what finishes the payment after a challenge, and the challenge's ACS transaction. */
  capture: ColumnType<boolean, boolean | undefined, boolean>;
  card_brand: ColumnType<string | null, string | null | undefined, string | null>;
  issuer_decline: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  acs_trans_id: ColumnType<string | null, string | null | undefined, string | null>;
  acs_ds_trans_id: ColumnType<string | null, string | null | undefined, string | null>;
  acs_code: ColumnType<string | null, string | null | undefined, string | null>;
  acs_form_token: ColumnType<string | null, string | null | undefined, string | null>;
  acs_return_url: ColumnType<string | null, string | null | undefined, string | null>;
  acs_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  acs_attempts: ColumnType<number, number | undefined, number>;
  /** The amount first authorized, once an increment raised it (migration 0064). */
  first_amount: ColumnType<bigint | null, bigint | null | undefined, bigint | null>;
}

export interface SandboxCardOperationsTable {
  idempotency_key: string;
  payment_id: string;
  kind: 'capture' | 'void' | 'increment';
  amount: bigint;
  response: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

export interface WebhookEndpointsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  url: string;
  description: string | null;
  enabled_events: Json<string[]>;
  api_version: string | null;
  /** The shape of `api_version`; null when the endpoint takes the merchant's default. */
  api_shape: 'current' | 'legacy' | null;
  status: 'enabled' | 'disabled';
  metadata: Json<Record<string, string>>;
  secret_ciphertext: Buffer;
  previous_secret_ciphertext: Buffer | null;
  previous_secret_expires_at: Date | null;
  deleted_at: Date | null;
}

export interface WebhookDeliveriesTable {
  id: Generated<bigint>;
  event_id: string;
  endpoint_id: string;
  merchant_id: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Timestamp;
  delivered_at: Date | null;
}

export interface WebhookAttemptsTable {
  id: Generated<bigint>;
  delivery_id: bigint;
  attempted_at: Date;
  latency_ms: number;
  status_code: number | null;
  error: string | null;
}

export interface CustomersTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  email: string | null;
  name: string | null;
  phone: string | null;
  description: string | null;
  address: Json<Record<string, unknown> | null>;
  shipping: Json<Record<string, unknown> | null>;
  metadata: Json<Record<string, string>>;
  balance: ColumnType<bigint, bigint | undefined, bigint>;
  balance_currency: string | null;
  default_payment_method_id: string | null;
  deleted_at: Date | null;
  /** Languages, most preferred first (`en`, `zh-CN`); empty when none were given. */
  preferred_locales: ColumnType<string[], string | undefined, string>;
  tax_exempt: ColumnType<'none' | 'exempt' | 'reverse', 'none' | 'exempt' | 'reverse' | undefined, 'none' | 'exempt' | 'reverse'>;
}

/** Stripe's Product (migration 0059); its id may be the merchant's own, unique within the merchant and mode. */
export interface ProductsTable {
  merchant_id: string;
  livemode: boolean;
  id: string;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  name: string;
  active: boolean;
  type: 'service' | 'good';
  description: string | null;
  images: Json<string[]>;
  marketing_features: Json<Array<{ name: string }>>;
  metadata: Json<Record<string, string>>;
  default_price_id: string | null;
  shippable: boolean | null;
  statement_descriptor: string | null;
  unit_label: string | null;
  url: string | null;
  deleted_at: Date | null;
}

/** Stripe's one-time Price (migration 0059): its amount and currency never change. */
export interface PricesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  product_id: string;
  active: boolean;
  currency: string;
  unit_amount: bigint;
  nickname: string | null;
  lookup_key: string | null;
  tax_behavior: 'unspecified' | 'inclusive' | 'exclusive';
  metadata: Json<Record<string, string>>;
}

export interface ShippingRatesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  active: boolean;
  display_name: string;
  currency: string;
  amount: bigint;
  delivery_estimate: ColumnType<DeliveryEstimate | null, string | null, string | null>;
  tax_behavior: 'unspecified' | 'inclusive' | 'exclusive';
  metadata: Json<Record<string, string>>;
}

export interface CouponsTable {
  merchant_id: string;
  livemode: boolean;
  id: string;
  seq: Generated<bigint>;
  created_at: Timestamp;
  name: string | null;
  /** A percentage in hundredths (12.5% is 1250); null for an amount off. */
  percent_off_hundredths: number | null;
  amount_off: bigint | null;
  currency: string | null;
  duration: 'once' | 'repeating' | 'forever';
  duration_in_months: number | null;
  max_redemptions: number | null;
  redeem_by: Date | null;
  /** The catalogue products it takes off; null: every item. */
  applies_to_products: ColumnType<string[] | null, string | null, string | null>;
  metadata: Json<Record<string, string>>;
  times_redeemed: ColumnType<number, number | undefined, number>;
  deleted_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface PromotionCodesTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  coupon_id: string;
  code: string;
  active: boolean;
  customer_id: string | null;
  expires_at: Date | null;
  max_redemptions: number | null;
  minimum_amount: bigint | null;
  minimum_amount_currency: string | null;
  metadata: Json<Record<string, string>>;
  times_redeemed: ColumnType<number, number | undefined, number>;
}

/**
 * A session's discount (migration 0069): the coupon's terms as they were when it was applied, so that the order can
 * be recomputed whatever becomes of the coupon, and the promotion code that gave it (its word as the shopper typed it).
 */
export interface CheckoutDiscount {
  coupon: { id: string; name: string | null; percent_off_hundredths: number | null; amount_off: number | null; products: string[] | null };
  /** `minimum`: the least order (items, before the discount) the code needs, in the session's currency or another. */
  promotion_code: { id: string; code: string; minimum: { amount: number; currency: string } | null } | null;
}

export interface PaymentLinksTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  active: boolean;
  currency: string;
  url: string;
  /** The Checkout Session parameters each visit's session is made with (flows/payment-links.ts). */
  session_params: Json<Record<string, unknown>>;
  shipping_amounts: Json<number[]>;
  after_completion: Json<PaymentLinkAfterCompletion>;
  inactive_message: string | null;
  completed_sessions_limit: number | null;
  completed_sessions: ColumnType<number, number | undefined, number>;
  metadata: Json<Record<string, string>>;
}

/** What the shopper sees once paid: Coffer's confirmation page (with the merchant's message) or the merchant's page. */
export type PaymentLinkAfterCompletion =
  | { type: 'hosted_confirmation'; hosted_confirmation: { custom_message: string | null } }
  | { type: 'redirect'; redirect: { url: string } };

export interface CustomerBalanceTransactionsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  customer_id: string;
  amount: bigint;
  currency: string;
  ending_balance: bigint;
  description: string;
  metadata: Json<Record<string, string>>;
  type: 'adjustment';
}

export interface TokensTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  created_at: Timestamp;
  vault_card_id: string;
  card: Json<CardFacts & { bin: string }>;
  client_ip: string | null;
  used: ColumnType<boolean, boolean | undefined, boolean>;
  /** The name and address the token was made with, as a PaymentMethod's billing details; null when none. */
  billing_details: ColumnType<{ name?: string; address?: Record<string, string> } | null, string | undefined, string>;
}

export interface SetupIntentsTable {
  id: string;
  merchant_id: string;
  livemode: boolean;
  seq: Generated<bigint>;
  created_at: Timestamp;
  updated_at: Timestamp;
  status: 'requires_payment_method' | 'requires_confirmation' | 'requires_action' | 'processing' | 'succeeded' | 'canceled';
  customer_id: string | null;
  payment_method_id: string | null;
  usage: 'off_session' | 'on_session';
  client_secret: string;
  description: string | null;
  metadata: Json<Record<string, string>>;
  last_setup_error: Json<Record<string, unknown> | null>;
  cancellation_reason: string | null;
  verification_key: string | null;
  automatic_payment_methods: Json<{ enabled: boolean; allow_redirects: 'always' | 'never' } | null>;
  /** Where the shopper goes back to after a 3-D Secure challenge (migration 0047). */
  return_url: string | null;
  /** While `requires_action`: the challenge page, as Stripe's `next_action` (migration 0047). */
  next_action: Json<Record<string, unknown> | null>;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  checksum: string;
  applied_at: Timestamp;
}

export type StaffRole = 'owner' | 'admin' | 'developer' | 'risk_analyst' | 'support_agent' | 'finance' | 'auditor';

export interface StaffUsersTable {
  id: string;
  email: string;
  name: string;
  role: StaffRole;
  status: 'invited' | 'active' | 'disabled';
  password_hash: string | null;
  password_changed_at: Date | null;
  totp_secret_ciphertext: Buffer | null;
  totp_last_step: bigint | null;
  failed_logins: ColumnType<number, number | undefined, number>;
  locked_until: Date | null;
  created_at: Date;
  created_by: string;
  last_login_at: Date | null;
}

export interface StaffPasswordHistoryTable {
  user_id: string;
  password_hash: string;
  created_at: Date;
}

export interface StaffEnrollmentsTable {
  token_hash: Buffer;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  pending_totp_ciphertext: Buffer | null;
  /** SHA-256 of the enrollment code the requester of an approved invitation was given; null: the link alone. */
  code_hash: Buffer | null;
}

export interface StaffRecoveryCodesTable {
  user_id: string;
  code_hash: Buffer;
  created_at: Date;
  used_at: Date | null;
}

export interface StaffSessionsTable {
  id: Buffer;
  user_id: string;
  stage: 'mfa_pending' | 'active';
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  authenticated_at: Date | null;
  revoked_at: Date | null;
  address: string | null;
  user_agent: string | null;
  webauthn_challenge: string | null;
  webauthn_challenge_expires_at: Date | null;
}

export interface StaffPasskeysTable {
  id: string;
  user_id: string;
  credential_id: string;
  public_key: Buffer;
  counter: bigint;
  transports: Json<string[]>;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

export type ApprovalAction = 'refund.create' | 'api_key.create' | 'staff.invite' | 'staff.role_change' | 'limit.change' | 'rule_set.change';

export interface StaffApprovalsTable {
  id: string;
  action: ApprovalAction;
  params: Json<Record<string, unknown>>;
  summary: string;
  requested_by: string;
  requested_at: Date;
  expires_at: Date;
  status: 'pending' | 'approved' | 'rejected' | 'executed' | 'failed';
  decided_by: string | null;
  decided_at: Date | null;
  result: ColumnType<Record<string, unknown> | null, string | null, string | null>;
}

export interface Database {
  merchants: MerchantsTable;
  merchant_risk_settings: MerchantRiskSettingsTable;
  api_keys: ApiKeysTable;
  payment_methods: PaymentMethodsTable;
  provider_notifications: ProviderNotificationsTable;
  payment_limits: PaymentLimitsTable;
  velocity_entries: VelocityEntriesTable;
  risk_rule_sets: RiskRuleSetsTable;
  risk_decisions: RiskDecisionsTable;
  reviews: ReviewsTable;
  risk_labels: RiskLabelsTable;
  checkout_sessions: CheckoutSessionsTable;
  support_cases: SupportCasesTable;
  shopper_messages: ShopperMessagesTable;
  shopper_step_ups: ShopperStepUpsTable;
  shopper_credentials: ShopperCredentialsTable;
  shopper_password_tries: ShopperPasswordTriesTable;
  payment_limit_counters: PaymentLimitCountersTable;
  payment_intents: PaymentIntentsTable;
  charges: ChargesTable;
  wallet_late_payments: WalletLatePaymentsTable;
  idempotency_keys: IdempotencyKeysTable;
  installation: InstallationTable;
  events: EventsTable;
  audit_log: AuditLogTable;
  ledger_accounts: LedgerAccountsTable;
  ledger_transfers: LedgerTransfersTable;
  sandbox_card_payments: SandboxCardPaymentsTable;
  sandbox_card_operations: SandboxCardOperationsTable;
  refunds: RefundsTable;
  sandbox_card_refunds: SandboxCardRefundsTable;
  sandbox_card_notifications: SandboxCardNotificationsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  disputes: DisputesTable;
  customers: CustomersTable;
  products: ProductsTable;
  prices: PricesTable;
  shipping_rates: ShippingRatesTable;
  payment_links: PaymentLinksTable;
  coupons: CouponsTable;
  promotion_codes: PromotionCodesTable;
  customer_balance_transactions: CustomerBalanceTransactionsTable;
  tokens: TokensTable;
  setup_intents: SetupIntentsTable;
  sandbox_card_disputes: SandboxCardDisputesTable;
  request_nonces: RequestNoncesTable;
  audit_seals: AuditSealsTable;
  audit_chain_head: AuditChainHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  staff_users: StaffUsersTable;
  staff_password_history: StaffPasswordHistoryTable;
  staff_enrollments: StaffEnrollmentsTable;
  staff_recovery_codes: StaffRecoveryCodesTable;
  staff_sessions: StaffSessionsTable;
  staff_passkeys: StaffPasskeysTable;
  staff_approvals: StaffApprovalsTable;
  schema_migrations: SchemaMigrationsTable;
}

export type PaymentIntentRow = Selectable<PaymentIntentsTable>;
export type ProductRow = Selectable<ProductsTable>;
export type PriceRow = Selectable<PricesTable>;
export type ShippingRateRow = Selectable<ShippingRatesTable>;
export type CouponRow = Selectable<CouponsTable>;
export type PromotionCodeRow = Selectable<PromotionCodesTable>;
export type PaymentLinkRow = Selectable<PaymentLinksTable>;
export type ChargeRow = Selectable<ChargesTable>;
export type WalletLatePaymentRow = Selectable<WalletLatePaymentsTable>;
export type PaymentMethodRow = Selectable<PaymentMethodsTable>;
export type PaymentLimitRow = Selectable<PaymentLimitsTable>;
export type RiskRuleSetRow = Selectable<RiskRuleSetsTable>;
export type RiskDecisionRow = Selectable<RiskDecisionsTable>;
export type ReviewRow = Selectable<ReviewsTable>;
export type CheckoutSessionRow = Selectable<CheckoutSessionsTable>;
export type ShopperCredentialRow = Selectable<ShopperCredentialsTable>;
export type ShopperStepUpRow = Selectable<ShopperStepUpsTable>;
export type SupportCaseRow = Selectable<SupportCasesTable>;
export type MerchantRow = Selectable<MerchantsTable>;
export type EventRow = Selectable<EventsTable>;
export type RefundRow = Selectable<RefundsTable>;
export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
export type DisputeRow = Selectable<DisputesTable>;
export type CustomerRow = Selectable<CustomersTable>;
export type SetupIntentRow = Selectable<SetupIntentsTable>;
export type CustomerBalanceTransactionRow = Selectable<CustomerBalanceTransactionsTable>;
export type StaffUserRow = Selectable<StaffUsersTable>;
export type StaffSessionRow = Selectable<StaffSessionsTable>;
export type StaffPasskeyRow = Selectable<StaffPasskeysTable>;
export type StaffApprovalRow = Selectable<StaffApprovalsTable>;
export type NewAuditRecord = Insertable<AuditLogTable>;

/** The card facts of a payment method that must be a card (a bug otherwise, not bad input). */
export function cardFactsOf(row: { id: string; type: PaymentMethodType; card: CardFacts | null }): CardFacts {
  if (row.type !== 'card' || row.card === null) throw new Error(`assertion failed: payment method ${row.id} is a card`);
  return row.card;
}
