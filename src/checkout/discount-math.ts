/**
 * What a coupon takes off an order (decision 0062), computed the same way by the server (the amount charged) and by
 * the hosted page's script (the amount shown while the shopper changes the order): both import this file, which
 * imports nothing. Amounts are in the currency's minor units; `step` is the currency's smallest amount a payment can
 * be a multiple of (1 for most; 10 or 100 for some), and every amount here stays a multiple of it.
 */

export interface DiscountTerms {
  /** A percentage in hundredths (12.5% is 1250), or null for an amount off. */
  percentOffHundredths: number | null;
  amountOff: number | null;
  /** The catalogue products it takes off; null: every item. */
  products: readonly string[] | null;
}

export interface DiscountedItem {
  /** The item's amount (unit amount × quantity). */
  amount: number;
  /** Its catalogue product, if it has one: a coupon for some products takes off only theirs. */
  product?: string | undefined;
}

/** Whether the coupon takes anything off this item, whatever its quantity. */
export function discountApplies(terms: DiscountTerms, item: { product?: string | undefined }): boolean {
  return terms.products === null || (item.product !== undefined && terms.products.includes(item.product));
}

/**
 * What the coupon takes off, in all and from each item. A percentage is of the items it applies to, rounded to the
 * nearest step (a half up); an amount off is at most those items' amount. The whole is shared among those items in
 * proportion to their amounts, a step at a time, the steps left over going to the largest remainders (the earlier
 * item first when two are equal), so that the shares add up to the whole.
 */
export function discountOf(terms: DiscountTerms, items: readonly DiscountedItem[], step: number): { total: number; perItem: number[] } {
  const unit = BigInt(step);
  const applies = items.map((item) => item.amount > 0 && discountApplies(terms, item));
  const base = items.reduce((sum, item, index) => (applies[index] === true ? sum + BigInt(item.amount) : sum), 0n);
  let total: bigint;
  if (terms.percentOffHundredths !== null) {
    const scale = 10_000n * unit;
    total = ((base * BigInt(terms.percentOffHundredths) + scale / 2n) / scale) * unit;
  } else {
    const off = BigInt(terms.amountOff ?? 0);
    total = off < base ? off : base;
  }
  const perItem = items.map(() => 0n);
  if (total === 0n || base === 0n) return { total: Number(total), perItem: perItem.map(Number) };
  const steps = total / unit;
  const remainders: Array<{ index: number; remainder: bigint }> = [];
  let given = 0n;
  items.forEach((item, index) => {
    if (applies[index] !== true) return;
    const exact = steps * BigInt(item.amount);
    perItem[index] = (exact / base) * unit;
    given += exact / base;
    remainders.push({ index, remainder: exact % base });
  });
  remainders.sort((a, b) => (a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1));
  for (let left = steps - given, at = 0; left > 0n; left -= 1n, at += 1) {
    const next = remainders[at % remainders.length];
    if (next !== undefined) perItem[next.index] = (perItem[next.index] ?? 0n) + unit;
  }
  return { total: Number(total), perItem: perItem.map(Number) };
}
