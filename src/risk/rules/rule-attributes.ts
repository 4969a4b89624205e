import { assert } from '../../platform/assert.ts';
import type { VelocityDimension, VelocityWindow } from '../velocity.ts';

/**
 * The attributes a rule may name, `:name:` in the rule text. The catalogue is the contract between the rule language
 * and the risk engine: the engine fills what it knows for a payment; an attribute it cannot fill is left out, and
 * every comparison on it is unknown, so a rule on it does not fire (`is_missing(:name:)` tests absence explicitly).
 *
 * Strings of attributes marked `caseInsensitive` (countries, currencies, brands, emails) compare ignoring case, so
 * `:card_country: = 'us'` and `= 'US'` mean the same; identifiers (fingerprints, customer and device ids) compare
 * exactly. The names follow Stripe Radar's where Radar has one (`:card_country:`, `:ip_country:`, `:risk_score:`).
 */
export type RuleValueType = 'number' | 'string' | 'boolean';

export interface RuleAttribute<T extends RuleValueType = RuleValueType> {
  readonly type: T;
  /** One line an analyst reads beside the name. */
  readonly description: string;
  /** Strings only: both sides of a comparison with this attribute are compared ignoring case. */
  readonly caseInsensitive: boolean;
}

function numberAttribute(description: string): RuleAttribute<'number'> {
  return { type: 'number', description, caseInsensitive: false };
}

function stringAttribute(description: string, caseInsensitive: boolean): RuleAttribute<'string'> {
  return { type: 'string', description, caseInsensitive };
}

function booleanAttribute(description: string): RuleAttribute<'boolean'> {
  return { type: 'boolean', description, caseInsensitive: false };
}

const paymentAttributes = {
  amount: numberAttribute('Payment amount in minor units of its currency (1234 is 12.34 USD).'),
  amount_usd: numberAttribute('Payment amount converted to US dollars, cents as decimals (12.34); a risk figure, never money.'),
  currency: stringAttribute('Payment currency, ISO 4217 (usd, eur); case ignored.', true),
  livemode: booleanAttribute('true for a live payment, false in test mode.'),
  merchant_id: stringAttribute('The merchant account (acct_…).', false),
  merchant_category: stringAttribute("The merchant's category code, four digits ('5411').", false),
  customer_id: stringAttribute('The customer (cus_…), when the payment has one.', false),
  email: stringAttribute("The customer's email address; case ignored.", true),
  email_domain: stringAttribute("The email address after '@' (example.com); case ignored.", true),
  card_bin: stringAttribute('First six digits of the card number, as text (\'424242\').', false),
  card_brand: stringAttribute('Card brand as Stripe names it (visa, mastercard, amex, discover, jcb, unionpay); case ignored.', true),
  card_country: stringAttribute("Card issuer's country, ISO 3166-1 alpha-2 (US, FR); case ignored.", true),
  card_fingerprint: stringAttribute('Fingerprint of the card number: the same card always has the same one.', false),
  ip_address: stringAttribute("The client's IP address as the checkout saw it; case ignored (IPv6 hex digits).", true),
  ip_country: stringAttribute("Country of the client's IP address (offline database), ISO 3166-1 alpha-2; case ignored.", true),
  device_id: stringAttribute("Device identifier from the checkout's device signals.", false),
  billing_country: stringAttribute('Billing address country, ISO 3166-1 alpha-2; case ignored.', true),
  shipping_country: stringAttribute('Shipping address country, ISO 3166-1 alpha-2; case ignored.', true),
  hour_of_day: numberAttribute("Hour of the payment in the merchant's time zone, 0 to 23."),
  day_of_week: numberAttribute("Day of the payment in the merchant's time zone, 1 (Monday) to 7 (Sunday)."),
  risk_score: numberAttribute("The model's risk score, 0 (safe) to 100 (almost surely fraud); missing when the model did not run."),
  risk_level: stringAttribute("The model's risk level: normal, elevated or highest; case ignored.", true),
} as const;

/**
 * Velocity attributes, `<subject>_<measure>_<period>` (e.g. `:customer_payments_24h:`), read from the velocity
 * counters (`src/risk/velocity.ts`) for the subject's key in the payment. Payment counts are of earlier payments
 * in the window; `amount` adds their amounts in minor units of this payment's currency (other currencies not
 * counted).
 */
export const velocitySubjects = {
  card: 'card', customer: 'customer', email: 'email', ip_address: 'client_address', device: 'device', bin: 'bin',
} as const satisfies Record<string, VelocityDimension>;
export const velocityMeasures = ['payments', 'declined_payments', 'blocked_payments', 'amount'] as const;
export const velocityPeriods = { '1h': 'h1', '24h': 'h24', '7d': 'd7' } as const satisfies Record<string, VelocityWindow>;

type VelocitySubject = keyof typeof velocitySubjects;
type VelocityMeasure = (typeof velocityMeasures)[number];
type VelocityPeriod = keyof typeof velocityPeriods;
export type VelocityAttributeName = `${VelocitySubject}_${VelocityMeasure}_${VelocityPeriod}`;

const measureWords: Record<VelocityMeasure, string> = {
  payments: 'Payments',
  declined_payments: 'Declined payments',
  blocked_payments: 'Payments blocked by risk control',
  amount: "Sum of payment amounts (minor units of this payment's currency)",
};
const subjectWords: Record<VelocitySubject, string> = {
  card: 'this card', customer: 'this customer', email: 'this email address', ip_address: 'this IP address',
  device: 'this device', bin: "this card's BIN",
};
const periodWords: Record<VelocityPeriod, string> = { '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };

function velocityAttributes(): Record<VelocityAttributeName, RuleAttribute<'number'>> {
  const attributes: Partial<Record<VelocityAttributeName, RuleAttribute<'number'>>> = {};
  for (const subject of Object.keys(velocitySubjects) as VelocitySubject[]) {
    for (const measure of velocityMeasures) {
      for (const period of Object.keys(velocityPeriods) as VelocityPeriod[]) {
        const description = `${measureWords[measure]} of ${subjectWords[subject]} in the ${periodWords[period]}.`;
        attributes[`${subject}_${measure}_${period}`] = numberAttribute(description);
      }
    }
  }
  return attributes as Record<VelocityAttributeName, RuleAttribute<'number'>>;
}

/** Every attribute a rule may name, with its type and a one-line description. */
export const ruleAttributes: Readonly<typeof paymentAttributes & Record<VelocityAttributeName, RuleAttribute<'number'>>> = {
  ...paymentAttributes,
  ...velocityAttributes(),
};

export type RuleAttributeName = keyof typeof ruleAttributes;
interface ValueOfType {
  number: number;
  string: string;
  boolean: boolean;
}
export type RuleAttributeValue<K extends RuleAttributeName> = ValueOfType[(typeof ruleAttributes)[K]['type']];
export type RuleScalar = number | string | boolean;

/**
 * What the engine knows about one payment. An attribute left out, `undefined` or `null` is missing. A value of the
 * wrong type at run time (or a number that is NaN) is treated as missing too: the payment flow never fails because
 * of a rule.
 */
export type RuleInput = { readonly [K in RuleAttributeName]?: RuleAttributeValue<K> | null };

/** The names in catalogue order; a name's position is its slot in prepared inputs. */
export const ruleAttributeNames: readonly RuleAttributeName[] = Object.keys(ruleAttributes) as RuleAttributeName[];

const slotByName = new Map<string, number>(ruleAttributeNames.map((name, slot) => [name, slot]));

export function isRuleAttributeName(name: string): name is RuleAttributeName {
  return slotByName.has(name);
}

/** The slot of a known attribute; asking for an unknown one is a bug (the checker rejects unknown names). */
export function attributeSlot(name: RuleAttributeName): number {
  const slot = slotByName.get(name);
  assert(slot !== undefined, `${name} is a rule attribute`);
  return slot;
}
