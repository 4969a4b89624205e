import { assert } from '../platform/assert.ts';
/**
 * The one table of currencies Coffer accepts. Amounts everywhere in Coffer are integers in the currency's API
 * minor unit, which is Stripe's: two decimals for most currencies, none for JPY or KRW, three for BHD or KWD.
 * Where Stripe's representation differs from ISO 4217 (ISK and UGX are given with two decimals that must be
 * zero), `apiExponent` is Stripe's and `isoExponent` is ISO's; connectors that speak a provider's own format
 * convert between them in their transformers, from this table only.
 */
export interface CurrencyInfo {
  /** Lower-case ISO 4217 code, as in Stripe's API. */
  code: string;
  /** Decimal places of the amount integers in the API. */
  apiExponent: 0 | 2 | 3;
  /** Decimal places in ISO 4217. */
  isoExponent: 0 | 2 | 3;
  /** Amounts must be a multiple of this (10 for three-decimal currencies, 100 where decimals must be zero). */
  amountStep: 1 | 10 | 100;
  /** Smallest chargeable amount in API minor units: Stripe's published one, or else Coffer's indicative floor. */
  minimumMinor: number;
  /** The minimum is Coffer's floor (about a quarter of a US dollar), not a minimum Stripe publishes. */
  minimumIndicative: boolean;
}

const zeroDecimal = ['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'];
const threeDecimal = ['bhd', 'jod', 'kwd', 'omr', 'tnd'];
/** Zero-decimal in ISO 4217 but given to the API with two decimals that must be zero. */
const twoDecimalWholeUnits = ['isk', 'ugx'];
const twoDecimal = [
  'usd', 'aed', 'afn', 'all', 'amd', 'ang', 'aoa', 'ars', 'aud', 'awg', 'azn', 'bam', 'bbd', 'bdt', 'bgn', 'bmd',
  'bnd', 'bob', 'brl', 'bsd', 'bwp', 'byn', 'bzd', 'cad', 'cdf', 'chf', 'cny', 'cop', 'crc', 'cve', 'czk', 'dkk',
  'dop', 'dzd', 'egp', 'etb', 'eur', 'fjd', 'fkp', 'gbp', 'gel', 'gip', 'gmd', 'gtq', 'gyd', 'hkd', 'hnl', 'htg',
  'huf', 'idr', 'ils', 'inr', 'jmd', 'kes', 'kgs', 'khr', 'kyd', 'kzt', 'lak', 'lbp', 'lkr', 'lrd', 'lsl', 'mad',
  'mdl', 'mkd', 'mmk', 'mnt', 'mop', 'mur', 'mvr', 'mwk', 'mxn', 'myr', 'mzn', 'nad', 'ngn', 'nio', 'nok', 'npr',
  'nzd', 'pab', 'pen', 'pgk', 'php', 'pkr', 'pln', 'qar', 'ron', 'rsd', 'rub', 'sar', 'sbd', 'scr', 'sek', 'sgd',
  'shp', 'sle', 'sos', 'srd', 'szl', 'thb', 'tjs', 'top', 'try', 'ttd', 'twd', 'tzs', 'uah', 'uyu', 'uzs', 'wst',
  'xcd', 'yer', 'zar', 'zmw',
];

/** Stripe's published minimum charge amounts, in API minor units. */
const minimums: Record<string, number> = {
  usd: 50, aed: 200, aud: 50, bgn: 100, brl: 50, cad: 50, chf: 50, czk: 1500, dkk: 250, eur: 50, gbp: 30,
  hkd: 400, huf: 17500, inr: 50, jpy: 50, mxn: 1000, myr: 200, nok: 300, nzd: 50, pln: 200, ron: 200, sek: 300,
  sgd: 50, thb: 1000,
};

/**
 * For the currencies Stripe publishes no minimum for, Stripe asks for the equivalent of 0.50 USD at the day's rate.
 * Coffer has no exchange rates, so it refuses amounts below a floor of a quarter of a dollar at these indicative
 * rates (units per US dollar, 2025 magnitudes), rounded down to two significant figures: half Stripe's minimum, so
 * that rates drifting by up to a factor of two never refuse an amount Stripe would take (decision 0025).
 */
const unitsPerUsd: Record<string, number> = {
  afn: 70, all: 90, amd: 390, ang: 1.79, aoa: 910, ars: 1100, awg: 1.79, azn: 1.7, bam: 1.7, bbd: 2, bdt: 120,
  bhd: 0.376, bif: 2900, bmd: 1, bnd: 1.3, bob: 6.9, bsd: 1, bwp: 13.5, byn: 3.2, bzd: 2, cdf: 2800, clp: 930,
  cny: 7.2, cop: 4000, crc: 500, cve: 96, djf: 178, dop: 60, dzd: 132, egp: 49, etb: 130, fjd: 2.25, fkp: 0.75,
  gel: 2.7, gip: 0.75, gmd: 71, gnf: 8600, gtq: 7.7, gyd: 209, hnl: 26, htg: 131, idr: 16300, ils: 3.5, isk: 125,
  jmd: 160, jod: 0.709, kes: 129, kgs: 87, khr: 4000, kmf: 430, krw: 1380, kwd: 0.306, kyd: 0.83, kzt: 510,
  lak: 21600, lbp: 89500, lkr: 300, lrd: 200, lsl: 18, mad: 9.2, mdl: 17, mga: 4500, mkd: 54, mmk: 2100, mnt: 3580,
  mop: 8.1, mur: 45, mvr: 15.4, mwk: 1730, mzn: 64, nad: 18, ngn: 1550, nio: 36.8, npr: 137, omr: 0.385, pab: 1,
  pen: 3.6, pgk: 4.1, php: 57, pkr: 282, pyg: 7900, qar: 3.64, rsd: 100, rub: 80, rwf: 1440, sar: 3.75, sbd: 8.4,
  scr: 14.5, shp: 0.75, sle: 22.5, sos: 571, srd: 37, szl: 18, tjs: 9.8, tnd: 2.95, top: 2.4, try: 40, ttd: 6.8,
  twd: 30, tzs: 2600, uah: 41.5, ugx: 3600, uyu: 40, uzs: 12600, vnd: 26000, vuv: 120, wst: 2.75, xaf: 570,
  xcd: 2.7, xof: 570, xpf: 104, yer: 245, zar: 17.8, zmw: 24,
};

/** Indicative units per US dollar of the currencies that have a published minimum (the others are above). */
const publishedUnitsPerUsd: Record<string, number> = {
  usd: 1, aed: 3.67, aud: 1.52, bgn: 1.7, brl: 5.4, cad: 1.38, chf: 0.8, czk: 21, dkk: 6.45, eur: 0.865, gbp: 0.75,
  hkd: 7.8, huf: 340, inr: 88, jpy: 150, mxn: 18.5, myr: 4.2, nok: 10, nzd: 1.72, pln: 3.65, ron: 4.4, sek: 9.4,
  sgd: 1.29, thb: 32.5,
};

/** What a chargeback costs the merchant: the dispute fee, Stripe's 15.00 US dollars (decision 0028). */
const disputeFeeUsd = 15;

/**
 * The dispute fee in the currency's API minor units: 15.00 US dollars, converted at the indicative rates above
 * and rounded down to two significant figures and to the currency's step (1500 usd, 1200 eur, 2200 jpy, 4500 kwd,
 * which is 4.500). Indicative like the floors: Coffer has no exchange rates (decision 0028).
 */
export function disputeFeeMinor(currency: CurrencyInfo): bigint {
  const rate = publishedUnitsPerUsd[currency.code] ?? unitsPerUsd[currency.code];
  assert(rate !== undefined, `currency ${currency.code} has an indicative rate`);
  return BigInt(roundDown(disputeFeeUsd * rate * 10 ** currency.apiExponent, currency.amountStep));
}

/**
 * An amount given in US cents, in the currency's API minor units at the indicative rates above, rounded down to the
 * currency's step (at least one step): a threshold set once for every currency (decision 0030). Exact for USD.
 */
export function fromUsdCents(usdCents: number, currency: CurrencyInfo): bigint {
  const rate = publishedUnitsPerUsd[currency.code] ?? unitsPerUsd[currency.code];
  assert(rate !== undefined, `currency ${currency.code} has an indicative rate`);
  const minor = Math.floor((usdCents * rate * 10 ** currency.apiExponent) / 100 + 1e-9);
  return BigInt(Math.max(currency.amountStep, Math.floor(minor / currency.amountStep) * currency.amountStep));
}

/** Rounded down to two significant figures, then to a multiple of `step` (at least one step). */
function roundDown(minor: number, step: number): number {
  const scale = 10 ** Math.max(0, Math.floor(Math.log10(minor)) - 1);
  const rounded = Math.floor(minor / scale + 1e-9) * scale;
  return Math.max(step, Math.floor(rounded / step) * step);
}

/** A quarter of a dollar in the currency's API minor units, rounded down to two significant figures and to its step. */
function indicativeMinimum(code: string, apiExponent: number, amountStep: number): number {
  const rate = unitsPerUsd[code];
  if (rate === undefined) throw new Error(`currency ${code} has neither a published minimum nor an indicative rate`);
  return roundDown(0.25 * rate * 10 ** apiExponent, amountStep);
}

function entries(): Array<[string, CurrencyInfo]> {
  const make = (code: string, apiExponent: 0 | 2 | 3, isoExponent: 0 | 2 | 3, amountStep: 1 | 10 | 100): [string, CurrencyInfo] => {
    const published = minimums[code];
    const minimumMinor = published ?? indicativeMinimum(code, apiExponent, amountStep);
    return [code, { code, apiExponent, isoExponent, amountStep, minimumMinor, minimumIndicative: published === undefined }];
  };
  return [
    ...zeroDecimal.map((code) => make(code, 0, code === 'mga' ? 2 : 0, 1)),
    ...threeDecimal.map((code) => make(code, 3, 3, 10)),
    ...twoDecimalWholeUnits.map((code) => make(code, 2, 0, 100)),
    ...twoDecimal.map((code) => make(code, 2, 2, 1)),
  ];
}

export const currencies: ReadonlyMap<string, CurrencyInfo> = new Map(entries());

export function findCurrency(code: string): CurrencyInfo | undefined {
  return currencies.get(code);
}

/** Formats an amount for people (error messages, logs): `12.34 usd`, `500 jpy`, `1.230 bhd`. */
export function formatAmount(amountMinor: bigint | number, currency: CurrencyInfo): string {
  const value = BigInt(amountMinor);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(currency.apiExponent + 1, '0');
  const whole = digits.slice(0, digits.length - currency.apiExponent);
  const fraction = digits.slice(digits.length - currency.apiExponent);
  return `${negative ? '-' : ''}${whole}${fraction === '' ? '' : `.${fraction}`} ${currency.code}`;
}
