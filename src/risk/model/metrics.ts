/**
 * The evaluation measures of docs/risk-model.md, with sample weights: in a case-control sample each legitimate
 * row stands for many legitimate payments, so every measure here takes a weight per row and reads as if the
 * weighted rows were the natural traffic. Scores only need to be ordered (margins or probabilities alike).
 */

export interface Labelled {
  scores: ArrayLike<number>;
  /** 1 = fraud, 0 = legitimate. */
  labels: ArrayLike<number>;
  weights: ArrayLike<number>;
}

interface Threshold {
  /** Weighted frauds and legitimate rows scored at or above this threshold. */
  truePositive: number;
  falsePositive: number;
}

/** Cumulative counts at each distinct score, from the highest down (tied scores form one threshold). */
function thresholdsDescending(data: Labelled): { points: Threshold[]; positive: number; negative: number } {
  const n = data.scores.length;
  if (data.labels.length !== n || data.weights.length !== n) throw new Error('metrics: scores, labels and weights differ in length');
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (data.scores[b] as number) - (data.scores[a] as number));
  const points: Threshold[] = [];
  let truePositive = 0;
  let falsePositive = 0;
  for (let k = 0; k < n; k += 1) {
    const i = order[k] as number;
    const weight = data.weights[i] as number;
    if (data.labels[i] === 1) truePositive += weight;
    else falsePositive += weight;
    const next = order[k + 1];
    if (next === undefined || data.scores[next] !== data.scores[i]) points.push({ truePositive, falsePositive });
  }
  return { points, positive: truePositive, negative: falsePositive };
}

/**
 * Area under the precision-recall curve as average precision (scikit-learn's definition, no interpolation):
 * the sum over thresholds of the recall gained times the precision there.
 */
export function averagePrecision(data: Labelled): number {
  const { points, positive } = thresholdsDescending(data);
  if (positive === 0) return Number.NaN;
  let area = 0;
  let recallBefore = 0;
  for (const point of points) {
    const recall = point.truePositive / positive;
    const precision = point.truePositive / (point.truePositive + point.falsePositive);
    area += (recall - recallBefore) * precision;
    recallBefore = recall;
  }
  return area;
}

/** Area under the ROC curve: the weighted chance that a fraud scores above a legitimate row (ties count half). */
export function rocAuc(data: Labelled): number {
  const { points, positive, negative } = thresholdsDescending(data);
  if (positive === 0 || negative === 0) return Number.NaN;
  let area = 0;
  let before: Threshold = { truePositive: 0, falsePositive: 0 };
  for (const point of points) {
    // Trapezoid between consecutive thresholds: exact for the Mann-Whitney statistic with ties counted half.
    area += (point.falsePositive - before.falsePositive) * (point.truePositive + before.truePositive) / 2;
    before = point;
  }
  return area / (positive * negative);
}

/** The largest share of fraud caught by a threshold whose false-positive rate (weighted) is at most `fpr`. */
export function recallAtFpr(data: Labelled, fpr: number): number {
  const { points, positive, negative } = thresholdsDescending(data);
  if (positive === 0 || negative === 0) return Number.NaN;
  let best = 0;
  for (const point of points) {
    if (point.falsePositive / negative > fpr) break;
    best = point.truePositive / positive;
  }
  return best;
}

export interface CalibrationCheck {
  /** Weighted sum of the predicted fraud probabilities. */
  predictedFrauds: number;
  /** Weighted number of frauds (frauds carry weight 1 in both data sets, so this is their count). */
  observedFrauds: number;
  /** predicted / observed: 1 is perfect; the acceptance band is 0.5 to 2. */
  ratio: number;
}

export function calibrationCheck(probabilities: ArrayLike<number>, labels: ArrayLike<number>, weights: ArrayLike<number>): CalibrationCheck {
  let predictedFrauds = 0;
  let observedFrauds = 0;
  for (let i = 0; i < probabilities.length; i += 1) {
    const weight = weights[i] as number;
    predictedFrauds += weight * (probabilities[i] as number);
    observedFrauds += weight * (labels[i] as number);
  }
  return { predictedFrauds, observedFrauds, ratio: predictedFrauds / observedFrauds };
}

export interface EvaluationMetrics {
  rows: number;
  frauds: number;
  legitimateRows: number;
  averagePrecision: number;
  rocAuc: number;
  recallAtFpr0005: number;
  recallAtFpr001: number;
  recallAtFpr005: number;
  calibration: CalibrationCheck;
}

/** Every measure `coffer risk evaluate` prints, on calibrated probabilities. */
export function evaluateProbabilities(probabilities: ArrayLike<number>, labels: ArrayLike<number>, weights: ArrayLike<number>): EvaluationMetrics {
  const data = { scores: probabilities, labels, weights };
  let frauds = 0;
  for (let i = 0; i < labels.length; i += 1) frauds += labels[i] === 1 ? 1 : 0;
  return {
    rows: labels.length,
    frauds,
    legitimateRows: labels.length - frauds,
    averagePrecision: averagePrecision(data),
    rocAuc: rocAuc(data),
    recallAtFpr0005: recallAtFpr(data, 0.005),
    recallAtFpr001: recallAtFpr(data, 0.01),
    recallAtFpr005: recallAtFpr(data, 0.05),
    calibration: calibrationCheck(probabilities, labels, weights),
  };
}
