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
  /** Smallest chargeable amount in API minor units, where Stripe publishes one. */
  minimumMinor: number | undefined;
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

function entries(): Array<[string, CurrencyInfo]> {
  const make = (code: string, apiExponent: 0 | 2 | 3, isoExponent: 0 | 2 | 3, amountStep: 1 | 10 | 100) =>
    [code, { code, apiExponent, isoExponent, amountStep, minimumMinor: minimums[code] }] as [string, CurrencyInfo];
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
