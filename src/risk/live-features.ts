/**
 * The Sparkov model's features for a live payment, from what Coffer has at confirmation (see
 * `model/sparkov-features.ts` for the same features computed from a file).
 *
 * - amount: the payment in US dollars (indicative rates, `usd-rates.ts`);
 * - category_risk: the merchant's category code mapped to the nearest Sparkov category (card-not-present
 *   variants, as Coffer takes online payments); a code not mapped gets the overall fraud log-odds;
 * - hour_of_day, day_of_week: the merchant's local clock (Sparkov's times are local wall clock);
 * - card history: the card's velocity counters (24 h, 7 d; "every earlier payment" is read over 7 days, the
 *   longest window Coffer keeps counters for), amounts in dollars;
 * - distance_km and cardholder_age_years: Coffer takes neither the cardholder's home nor their birth date, so
 *   both are the median of the legitimate payments in the Sparkov training file (78.2 km, 44.8 years). An
 *   imputed feature then adds the same to every payment, and is never given as a reason.
 */
import { assert } from '../platform/assert.ts';
import type { SparkovEncoding } from './model/sparkov-features.ts';
import { sparkovFeatures } from './model/sparkov-features.ts';

/** Medians over the legitimate rows of `sparkov-train.csv` (2,798 rows). */
export const imputedSparkovValues = { distance_km: 78.2, cardholder_age_years: 44.8 } as const;

const hoursSinceNone = 720;

/** Merchant category codes (ISO 18245) by the Sparkov category they sell in. */
const categoryByCode: Readonly<Record<string, string>> = {
  ...codes(['5411', '5422', '5441', '5451', '5462', '5499'], 'grocery_net'),
  ...codes(['5811', '5812', '5813', '5814'], 'food_dining'),
  ...codes(['4111', '4121', '4131', '4784', '5541', '5542', '5172'], 'gas_transport'),
  ...codes(['7832', '7841', '7922', '7929', '7991', '7994', '7996', '7999', '5815', '5816', '5817', '5818'], 'entertainment'),
  ...codes(['5912', '5977', '7230', '7298', '8011', '8021', '8099'], 'personal_care'),
  ...codes(['5655', '5940', '5941', '7997', '7941'], 'health_fitness'),
  ...codes(['5021', '5039', '5200', '5211', '5251', '5261', '5712', '5713', '5714', '5718', '5719', '5722'], 'home'),
  ...codes(['5641', '5945', '5995', '0742'], 'kids_pets'),
  ...codes(['3000', '3001', '4411', '4511', '4722', '7011', '7512'], 'travel'),
  ...codes(['5310', '5311', '5331', '5399', '5611', '5621', '5631', '5651', '5661', '5691', '5699', '5732', '5734', '5944', '5964', '5969', '5999'], 'shopping_net'),
};

function codes(list: readonly string[], category: string): Record<string, string> {
  return Object.fromEntries(list.map((code) => [code, category]));
}

/** The Sparkov category a merchant category code is scored as, if any. */
export function sparkovCategory(code: string | null): string | undefined {
  return code === null ? undefined : (categoryByCode[code] ?? 'misc_net');
}

export interface CardHistory {
  count24h: number;
  amountUsd24h: number;
  count7d: number;
  amountUsd7d: number;
  /** When the card last paid in the last 7 days, if it did. */
  lastAtMs: number | null;
}

export interface LivePayment {
  amountUsd: number;
  merchantCategory: string | null;
  /** Local hour with minutes as a fraction (0 to 24), and day of the week (0 = Sunday), in the merchant's zone. */
  localHour: number;
  localDayOfWeek: number;
  nowMs: number;
  /** Null when the payment has no card (a wallet). */
  card: CardHistory | null;
}

export interface LiveFeatures {
  features: number[];
  /** Features given a stand-in value rather than measured. */
  imputed: string[];
}

const expectedOrder = [
  'amount', 'category_risk', 'hour_of_day', 'day_of_week', 'distance_km', 'cardholder_age_years', 'card_count_24h',
  'card_amount_24h', 'card_count_7d', 'card_amount_7d', 'card_count_before', 'hours_since_card_previous', 'amount_to_card_mean',
];
assert(sparkovFeatures.map((feature) => feature.name).join(',') === expectedOrder.join(','), 'the live features follow the Sparkov feature order');

export function liveSparkovFeatures(payment: LivePayment, encoding: SparkovEncoding): LiveFeatures {
  const category = sparkovCategory(payment.merchantCategory);
  const categoryRisk = category === undefined ? encoding.unknownCategoryRisk : (encoding.categoryRisk[category] ?? encoding.unknownCategoryRisk);
  const imputed = ['distance_km', 'cardholder_age_years'];
  if (category === undefined) imputed.push('category_risk');
  const card = payment.card ?? { count24h: 0, amountUsd24h: 0, count7d: 0, amountUsd7d: 0, lastAtMs: null };
  if (payment.card === null) imputed.push('card_count_24h', 'card_amount_24h', 'card_count_7d', 'card_amount_7d', 'card_count_before', 'hours_since_card_previous', 'amount_to_card_mean');
  const hoursSince = card.lastAtMs === null ? hoursSinceNone : Math.min(hoursSinceNone, Math.max(0, payment.nowMs - card.lastAtMs) / 3_600_000);
  const meanBefore = card.count7d === 0 ? 0 : card.amountUsd7d / card.count7d;
  const features = [
    payment.amountUsd,
    categoryRisk,
    payment.localHour,
    payment.localDayOfWeek,
    imputedSparkovValues.distance_km,
    imputedSparkovValues.cardholder_age_years,
    card.count24h,
    card.amountUsd24h,
    card.count7d,
    card.amountUsd7d,
    card.count7d,
    hoursSince,
    meanBefore > 0 ? payment.amountUsd / meanBefore : 1,
  ];
  return { features, imputed };
}
