/**
 * Gradient-boosted decision trees for a binary label, trained in TypeScript: logistic loss, second-order
 * (Newton) leaf values with L2 shrinkage as in XGBoost, features bucketed once into at most 256 quantile bins
 * so that a split search is a scan over a histogram. Rows carry weights (the case-control correction), and a
 * seed fixes the row and column subsamples, so the same data and parameters always give the same trees.
 */
import { sampleIndexes, seededRandom } from './seeded-random.ts';
import type { TreeArrays } from './tree-ensemble.ts';

export interface BoostingParameters {
  trees: number;
  learningRate: number;
  maxDepth: number;
  /** A child needs at least this much hessian (weighted); larger values make smoother trees. */
  minChildWeight: number;
  /** L2 penalty on leaf values (XGBoost's lambda). */
  l2: number;
  /** A split must improve the loss by at least this much (XGBoost's gamma). */
  minSplitGain: number;
  /** Share of rows drawn (without replacement) for each tree. */
  rowSubsample: number;
  /** Share of features offered to each tree. */
  columnSubsample: number;
  /** Histogram bins per feature, at most 256. */
  bins: number;
  seed: number;
}

export interface TrainingSet {
  /** Row-major: row i's feature j is at i * featureCount + j. Every value is finite. */
  x: Float64Array;
  featureCount: number;
  /** 1 = fraud, 0 = legitimate. */
  y: Uint8Array;
  /** Weight of each row in the loss. */
  w: Float64Array;
}

export interface BoostedTrees {
  baseMargin: number;
  trees: TreeArrays[];
  /** The trainer's own margin for every training row, accumulated tree by tree in the scorer's order. */
  trainingMargins: Float64Array;
}

interface Binned {
  /** Row-major bin numbers. */
  bins: Uint8Array;
  /** Per feature, the upper edge of each bin but the last: bin b holds values <= cuts[b]. */
  cuts: Float64Array[];
}

/** Cut points at quantiles of each feature's values, halfway between neighbouring distinct values. */
function binFeatures(set: TrainingSet, binsMax: number): Binned {
  const n = set.y.length;
  const d = set.featureCount;
  const cuts: Float64Array[] = [];
  const bins = new Uint8Array(n * d);
  const column = new Float64Array(n);
  for (let j = 0; j < d; j += 1) {
    for (let i = 0; i < n; i += 1) column[i] = set.x[i * d + j] as number;
    const sorted = Float64Array.from(column).sort();
    const edges: number[] = [];
    for (let b = 1; b < binsMax; b += 1) {
      const at = Math.min(n - 1, Math.floor((b * n) / binsMax));
      const low = sorted[at - 1 < 0 ? 0 : at - 1] as number;
      // The next distinct value above `low`: the cut sits between them.
      let k = at;
      while (k < n && (sorted[k] as number) <= low) k += 1;
      if (k >= n) continue;
      const cut = (low + (sorted[k] as number)) / 2;
      if (edges.length === 0 || cut > (edges[edges.length - 1] as number)) edges.push(cut);
    }
    const featureCuts = Float64Array.from(edges);
    cuts.push(featureCuts);
    for (let i = 0; i < n; i += 1) {
      const value = column[i] as number;
      let low = 0;
      let high = featureCuts.length;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if (value <= (featureCuts[mid] as number)) high = mid;
        else low = mid + 1;
      }
      bins[i * d + j] = low;
    }
  }
  return { bins, cuts };
}

interface GrowContext {
  binned: Binned;
  featureCount: number;
  gradient: Float64Array;
  hessian: Float64Array;
  features: Int32Array;
  params: BoostingParameters;
  tree: TreeArrays;
}

interface Split {
  gain: number;
  feature: number;
  bin: number;
}

function leafValue(g: number, h: number, params: BoostingParameters): number {
  return (-g / (h + params.l2)) * params.learningRate;
}

function bestSplit(context: GrowContext, rows: Int32Array, g: number, h: number): Split | null {
  const { binned, featureCount: d, gradient, hessian, params } = context;
  const parentScore = (g * g) / (h + params.l2);
  let best: Split | null = null;
  const histogramG = new Float64Array(256);
  const histogramH = new Float64Array(256);
  for (const feature of context.features) {
    const binCount = (binned.cuts[feature] as Float64Array).length + 1;
    if (binCount < 2) continue;
    histogramG.fill(0, 0, binCount);
    histogramH.fill(0, 0, binCount);
    for (const row of rows) {
      const bin = binned.bins[row * d + feature] as number;
      histogramG[bin] = (histogramG[bin] as number) + (gradient[row] as number);
      histogramH[bin] = (histogramH[bin] as number) + (hessian[row] as number);
    }
    let leftG = 0;
    let leftH = 0;
    for (let bin = 0; bin < binCount - 1; bin += 1) {
      leftG += histogramG[bin] as number;
      leftH += histogramH[bin] as number;
      const rightH = h - leftH;
      if (leftH < params.minChildWeight) continue;
      if (rightH < params.minChildWeight) break;
      const rightG = g - leftG;
      const gain = (leftG * leftG) / (leftH + params.l2) + (rightG * rightG) / (rightH + params.l2) - parentScore;
      if (gain > params.minSplitGain && (best === null || gain > best.gain)) best = { gain, feature, bin };
    }
  }
  return best;
}

/** Grows the subtree of `rows` from node index `node` (already in the tree) into context.tree. */
function grow(context: GrowContext, node: number, rows: Int32Array, depth: number): void {
  const { gradient, hessian, params, tree, binned, featureCount: d } = context;
  let g = 0;
  let h = 0;
  for (const row of rows) {
    g += gradient[row] as number;
    h += hessian[row] as number;
  }
  tree.value[node] = leafValue(g, h, params);
  tree.cover[node] = h;
  const split = depth < params.maxDepth ? bestSplit(context, rows, g, h) : null;
  if (split === null) return;
  const leftRows: number[] = [];
  const rightRows: number[] = [];
  for (const row of rows) ((binned.bins[row * d + split.feature] as number) <= split.bin ? leftRows : rightRows).push(row);
  const left = tree.feature.length;
  const right = left + 1;
  tree.feature[node] = split.feature;
  tree.threshold[node] = (binned.cuts[split.feature] as Float64Array)[split.bin] as number;
  tree.left[node] = left;
  tree.right[node] = right;
  for (let child = 0; child < 2; child += 1) {
    tree.feature.push(-1);
    tree.threshold.push(0);
    tree.left.push(-1);
    tree.right.push(-1);
    tree.value.push(0);
    tree.cover.push(0);
  }
  grow(context, left, Int32Array.from(leftRows), depth + 1);
  grow(context, right, Int32Array.from(rightRows), depth + 1);
}

function sigmoid(margin: number): number {
  return 1 / (1 + Math.exp(-margin));
}

/** The row's leaf in a finished tree, by the stored thresholds (the scorer's rule). */
function leafFor(tree: TreeArrays, x: Float64Array, offset: number): number {
  let node = 0;
  while ((tree.feature[node] as number) >= 0) {
    const feature = tree.feature[node] as number;
    node = (x[offset + feature] as number) <= (tree.threshold[node] as number) ? (tree.left[node] as number) : (tree.right[node] as number);
  }
  return node;
}

export function trainBoostedTrees(set: TrainingSet, params: BoostingParameters): BoostedTrees {
  const n = set.y.length;
  const d = set.featureCount;
  if (n === 0 || set.x.length !== n * d || set.w.length !== n) throw new Error('trainBoostedTrees: inconsistent training set');
  if (params.bins < 2 || params.bins > 256) throw new Error('trainBoostedTrees: bins must be between 2 and 256');
  let positive = 0;
  let negative = 0;
  for (let i = 0; i < n; i += 1) {
    if (set.y[i] === 1) positive += set.w[i] as number;
    else negative += set.w[i] as number;
  }
  if (positive === 0 || negative === 0) throw new Error(`the training rows need both frauds and legitimate rows; they hold no ${positive === 0 ? "fraud" : "legitimate row"}`);
  const baseMargin = Math.log(positive / negative);
  const binned = binFeatures(set, params.bins);
  const random = seededRandom(params.seed);
  const margins = new Float64Array(n).fill(baseMargin);
  const gradient = new Float64Array(n);
  const hessian = new Float64Array(n);
  const trees: TreeArrays[] = [];
  const rowCount = Math.max(1, Math.round(n * params.rowSubsample));
  const featureSampleCount = Math.max(1, Math.round(d * params.columnSubsample));
  for (let t = 0; t < params.trees; t += 1) {
    for (let i = 0; i < n; i += 1) {
      const p = sigmoid(margins[i] as number);
      const w = set.w[i] as number;
      gradient[i] = w * (p - (set.y[i] as number));
      hessian[i] = w * Math.max(p * (1 - p), 1e-16);
    }
    const rows = rowCount >= n ? Int32Array.from({ length: n }, (_, i) => i) : sampleIndexes(n, rowCount, random);
    const features = featureSampleCount >= d ? Int32Array.from({ length: d }, (_, j) => j) : sampleIndexes(d, featureSampleCount, random);
    const tree: TreeArrays = { feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0], cover: [0] };
    const context: GrowContext = { binned, featureCount: d, gradient, hessian, features, params, tree };
    grow(context, 0, rows, 0);
    // Every row (sampled or not) moves by its leaf's value, found with the stored threshold as the scorer does.
    for (let i = 0; i < n; i += 1) margins[i] = (margins[i] as number) + (tree.value[leafFor(tree, set.x, i * d)] as number);
    trees.push(tree);
  }
  return { baseMargin, trees, trainingMargins: margins };
}
