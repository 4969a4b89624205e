/**
 * What a wrong decision costs, and the thresholds that make the model's decisions cheapest.
 *
 * For a payment of amount A (major units of the data set's currency):
 * - allowing a fraud costs A + chargebackFee (the goods or funds are gone, the dispute is charged);
 * - blocking a legitimate payment costs grossMarginRate * A + declineFriction (the lost margin on the sale, and
 *   the customer's annoyance, support contacts and the chance they do not come back);
 * - a review costs reviewCost (an analyst's few minutes) on every reviewed payment, and lets through the share
 *   of reviewed frauds the analyst misses (1 - reviewFraudCatchRate).
 * Allowing a legitimate payment and blocking a fraud cost nothing.
 *
 * The two thresholds on the calibrated probability (review at or above `review`, block at or above `block`) are the
 * pair that minimizes the total cost on out-of-fold predictions of the training data, weighted to natural
 * prevalence, under two caps: blocks at most `blockRateMax` and reviews at most `reviewRateMax` of legitimate
 * payments (a review queue has a capacity; Radar's "incorrectly blocks just 0.1%").
 */

export interface CostModel {
  currency: string;
  chargebackFee: number;
  grossMarginRate: number;
  declineFriction: number;
  reviewCost: number;
  reviewFraudCatchRate: number;
  blockRateMax: number;
  reviewRateMax: number;
}

export type ModelAction = 'allow' | 'review' | 'block';
export type RiskLevel = 'normal' | 'elevated' | 'highest';

export interface OperatingThresholds {
  /** Calibrated probability from which a payment is reviewed. */
  review: number;
  /** Calibrated probability from which a payment is blocked (at least `review`). */
  block: number;
}

/** How a set of decisions turned out, weighted to natural prevalence. */
export interface OperatingPoint {
  /** Share of legitimate payments blocked, and reviewed. */
  legitimateBlockedRate: number;
  legitimateReviewedRate: number;
  /** Share of frauds blocked, reviewed, and stopped (blocked, or reviewed and caught). */
  fraudBlockedRate: number;
  fraudReviewedRate: number;
  fraudStoppedRate: number;
  /** Cost per payment at these thresholds, and if every payment were allowed. */
  costPerPayment: number;
  costPerPaymentAllowAll: number;
}

export function actionFor(thresholds: OperatingThresholds, probability: number): ModelAction {
  if (probability >= thresholds.block) return 'block';
  if (probability >= thresholds.review) return 'review';
  return 'allow';
}

export interface Decided {
  probabilities: ArrayLike<number>;
  labels: ArrayLike<number>;
  weights: ArrayLike<number>;
  amounts: ArrayLike<number>;
}

function costOf(model: CostModel, action: ModelAction, fraud: boolean, amount: number): number {
  switch (action) {
    case 'allow':
      return fraud ? amount + model.chargebackFee : 0;
    case 'review':
      return model.reviewCost + (fraud ? (1 - model.reviewFraudCatchRate) * (amount + model.chargebackFee) : 0);
    case 'block':
      return fraud ? 0 : model.grossMarginRate * amount + model.declineFriction;
    default: {
      const never: never = action;
      throw new Error(`unknown action ${String(never)}`);
    }
  }
}

export function operatingPoint(model: CostModel, thresholds: OperatingThresholds, data: Decided): OperatingPoint {
  let legitimate = 0;
  let fraud = 0;
  const legitimateBy = { allow: 0, review: 0, block: 0 };
  const fraudBy = { allow: 0, review: 0, block: 0 };
  let cost = 0;
  let costAllowAll = 0;
  for (let i = 0; i < data.labels.length; i += 1) {
    const weight = data.weights[i] as number;
    const isFraud = data.labels[i] === 1;
    const amount = data.amounts[i] as number;
    const action = actionFor(thresholds, data.probabilities[i] as number);
    (isFraud ? fraudBy : legitimateBy)[action] += weight;
    if (isFraud) fraud += weight;
    else legitimate += weight;
    cost += weight * costOf(model, action, isFraud, amount);
    costAllowAll += weight * costOf(model, 'allow', isFraud, amount);
  }
  return {
    legitimateBlockedRate: legitimateBy.block / legitimate,
    legitimateReviewedRate: legitimateBy.review / legitimate,
    fraudBlockedRate: fraudBy.block / fraud,
    fraudReviewedRate: fraudBy.review / fraud,
    fraudStoppedRate: (fraudBy.block + model.reviewFraudCatchRate * fraudBy.review) / fraud,
    costPerPayment: cost / (legitimate + fraud),
    costPerPaymentAllowAll: costAllowAll / (legitimate + fraud),
  };
}

/** Candidate thresholds: a log-spaced grid of probabilities, plus 1.01 for "never". */
function candidateThresholds(): number[] {
  const grid: number[] = [];
  for (let k = 0; k <= 120; k += 1) grid.push(10 ** (-6 + (k * 6) / 120));
  grid.push(1.01);
  return grid;
}

/**
 * The cheapest pair of thresholds within the caps. Rows are sorted by probability once; for each candidate pair
 * the cost is read from prefix sums, so the search is linear in rows plus quadratic in candidates.
 */
export function chooseThresholds(model: CostModel, data: Decided): OperatingThresholds {
  const candidates = candidateThresholds();
  const m = candidates.length;
  // Per candidate bucket [c_k, c_{k+1}): weighted legitimate count and the cost of each action for its rows.
  const legitimate = new Float64Array(m + 1);
  const costAllow = new Float64Array(m + 1);
  const costReview = new Float64Array(m + 1);
  const costBlock = new Float64Array(m + 1);
  let legitimateTotal = 0;
  for (let i = 0; i < data.labels.length; i += 1) {
    const p = data.probabilities[i] as number;
    let bucket = 0;
    while (bucket < m && p >= (candidates[bucket] as number)) bucket += 1;
    const weight = data.weights[i] as number;
    const isFraud = data.labels[i] === 1;
    const amount = data.amounts[i] as number;
    if (!isFraud) {
      legitimate[bucket] = (legitimate[bucket] as number) + weight;
      legitimateTotal += weight;
    }
    costAllow[bucket] = (costAllow[bucket] as number) + weight * costOf(model, 'allow', isFraud, amount);
    costReview[bucket] = (costReview[bucket] as number) + weight * costOf(model, 'review', isFraud, amount);
    costBlock[bucket] = (costBlock[bucket] as number) + weight * costOf(model, 'block', isFraud, amount);
  }
  // Bucket b holds rows with candidates[b-1] <= p < candidates[b]; threshold index r means p >= candidates[r].
  const prefix = (values: Float64Array) => {
    const sums = new Float64Array(m + 2);
    for (let b = 0; b <= m; b += 1) sums[b + 1] = (sums[b] as number) + (values[b] as number);
    return sums;
  };
  const [legitimateSum, allowSum, reviewSum, blockSum] = [legitimate, costAllow, costReview, costBlock].map(prefix) as [Float64Array, Float64Array, Float64Array, Float64Array];
  const total = (sums: Float64Array, from: number, to: number) => (sums[to] as number) - (sums[from] as number);
  let best = { cost: Number.POSITIVE_INFINITY, review: m - 1, block: m - 1 };
  for (let r = 0; r < m; r += 1) {
    for (let b = r; b < m; b += 1) {
      // Rows with p >= candidates[x] are the buckets x+1 .. m.
      const reviewed = total(legitimateSum, r + 1, b + 1) / legitimateTotal;
      const blocked = total(legitimateSum, b + 1, m + 1) / legitimateTotal;
      if (reviewed > model.reviewRateMax || blocked > model.blockRateMax) continue;
      const cost = total(allowSum, 0, r + 1) + total(reviewSum, r + 1, b + 1) + total(blockSum, b + 1, m + 1);
      if (cost < best.cost - 1e-9) best = { cost, review: r, block: b };
    }
  }
  return { review: candidates[best.review] as number, block: candidates[best.block] as number };
}

/**
 * A 0-100 risk score, as Stripe's `risk_score`: piecewise linear in log-odds through fixed anchors, so that
 * the review threshold lands on 65 (`elevated`, Radar's default) and the block threshold on 75 (`highest`).
 */
export const riskScoreAnchors = { elevated: 65, highest: 75 } as const;

function logit(p: number): number {
  const clamped = Math.min(1 - 1e-9, Math.max(1e-9, p));
  return Math.log(clamped / (1 - clamped));
}

export function riskScore(thresholds: OperatingThresholds, probability: number): number {
  const floor = logit(1e-6);
  const ceiling = logit(1 - 1e-6);
  const points: [number, number][] = [
    [floor, 0],
    [Math.min(logit(thresholds.review), ceiling), riskScoreAnchors.elevated],
    [Math.min(logit(thresholds.block), ceiling), riskScoreAnchors.highest],
    [ceiling, 100],
  ];
  const x = logit(probability);
  if (x <= floor) return 0;
  for (let k = 1; k < points.length; k += 1) {
    const [x0, y0] = points[k - 1] as [number, number];
    const [x1, y1] = points[k] as [number, number];
    if (x < x1) return x1 > x0 ? Math.floor(y0 + ((x - x0) / (x1 - x0)) * (y1 - y0)) : y1;
  }
  return 100;
}

export function riskLevel(score: number): RiskLevel {
  if (score >= riskScoreAnchors.highest) return 'highest';
  if (score >= riskScoreAnchors.elevated) return 'elevated';
  return 'normal';
}
