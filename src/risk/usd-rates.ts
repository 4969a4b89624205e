import { findCurrency } from '../domain/currency.ts';

/**
 * Indicative US dollars per unit of a currency, for risk figures only (`:amount_usd:`, the model's amount): never
 * for money. Rounded mid-market rates of 2026; a currency not listed has no dollar amount, so rules on
 * `:amount_usd:` do not fire for it and the model is not run. An operator can replace the table with
 * `COFFER_RISK_USD_RATES` (JSON, `{"eur":1.08}`), merged over these.
 */
const defaultRates: Readonly<Record<string, number>> = {
  usd: 1, eur: 1.08, gbp: 1.27, cny: 0.14, hkd: 0.128, jpy: 0.0067, krw: 0.00073, sgd: 0.74, twd: 0.031,
  aud: 0.66, nzd: 0.6, cad: 0.73, chf: 1.12, sek: 0.095, nok: 0.093, dkk: 0.145, pln: 0.25, czk: 0.043,
  huf: 0.0027, inr: 0.012, idr: 0.000062, myr: 0.22, thb: 0.028, php: 0.017, vnd: 0.00004, aed: 0.27,
  sar: 0.27, brl: 0.18, mxn: 0.055, zar: 0.054, try: 0.03, ils: 0.27, bhd: 2.65, kwd: 3.25, jod: 1.41, omr: 2.6,
};

export type UsdRates = Readonly<Record<string, number>>;

export function usdRates(overrides: Record<string, number> = {}): UsdRates {
  return { ...defaultRates, ...overrides };
}

/** The amount in US dollars (major units, cents as decimals), or undefined when the currency has no rate. */
export function amountInUsd(rates: UsdRates, amountMinor: bigint | number, currency: string): number | undefined {
  const rate = rates[currency];
  const info = findCurrency(currency);
  if (rate === undefined || info === undefined) return undefined;
  return Math.round((Number(amountMinor) / 10 ** info.apiExponent) * rate * 100) / 100;
}
