/**
 * From the trees' margin to a fraud probability at natural prevalence, in two steps:
 *
 * 1. The prior shift. The trees are trained with legitimate rows weighted `trainingLegitimateWeight`, while each
 *    legitimate row of the case-control sample stands for `naturalLegitimateWeight` payments. Changing the weight
 *    of one class multiplies the odds by the ratio, so the margin at natural prevalence is
 *    margin + ln(trainingLegitimateWeight / naturalLegitimateWeight) (Dal Pozzolo et al., 2015, in log-odds form).
 * 2. Platt scaling of that shifted margin, p = sigmoid(slope * shifted + intercept), fitted by weighted maximum
 *    likelihood on out-of-fold margins, with legitimate rows at their natural weight. Boosted trees are
 *    over-confident on rows they were trained on; the slope (usually below 1) takes that back.
 */

export interface Calibration {
  trainingLegitimateWeight: number;
  naturalLegitimateWeight: number;
  /** ln(trainingLegitimateWeight / naturalLegitimateWeight), added to the margin. */
  priorShift: number;
  slope: number;
  intercept: number;
}

export function priorShift(trainingLegitimateWeight: number, naturalLegitimateWeight: number): number {
  return Math.log(trainingLegitimateWeight / naturalLegitimateWeight);
}

export function sigmoid(margin: number): number {
  return margin >= 0 ? 1 / (1 + Math.exp(-margin)) : Math.exp(margin) / (1 + Math.exp(margin));
}

export function calibratedProbability(calibration: Calibration, margin: number): number {
  return sigmoid(calibration.slope * (margin + calibration.priorShift) + calibration.intercept);
}

/**
 * Weighted logistic regression of the label on one input (Newton's method on slope and intercept, a tiny ridge
 * keeping the 2x2 system solvable when the classes are separable).
 */
export function fitPlatt(inputs: ArrayLike<number>, labels: ArrayLike<number>, weights: ArrayLike<number>): { slope: number; intercept: number } {
  let slope = 1;
  let intercept = 0;
  const ridge = 1e-6;
  for (let iteration = 0; iteration < 100; iteration += 1) {
    let gradientSlope = ridge * (slope - 1);
    let gradientIntercept = 0;
    let hss = ridge;
    let hsi = 0;
    let hii = ridge;
    for (let i = 0; i < inputs.length; i += 1) {
      const input = inputs[i] as number;
      const weight = weights[i] as number;
      const p = sigmoid(slope * input + intercept);
      const residual = weight * (p - (labels[i] as number));
      const curvature = weight * p * (1 - p);
      gradientSlope += residual * input;
      gradientIntercept += residual;
      hss += curvature * input * input;
      hsi += curvature * input;
      hii += curvature;
    }
    const determinant = hss * hii - hsi * hsi;
    if (!(determinant > 0)) break;
    const stepSlope = (hii * gradientSlope - hsi * gradientIntercept) / determinant;
    const stepIntercept = (hss * gradientIntercept - hsi * gradientSlope) / determinant;
    slope -= stepSlope;
    intercept -= stepIntercept;
    if (Math.abs(stepSlope) < 1e-10 && Math.abs(stepIntercept) < 1e-10) break;
  }
  return { slope, intercept };
}
