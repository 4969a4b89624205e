/**
 * `coffer risk train` and `coffer risk evaluate` in functions: from a labelled file to a model file.
 *
 * Training on a file: out-of-fold margins over contiguous time blocks (each block predicted by trees trained on
 * the others) give the calibration and the cost-model thresholds something the trees have not seen; then the
 * trees are trained on every row. Validation: the file is cut in time, the earlier 70 % is trained exactly as
 * above, and the later 30 % is scored as `coffer risk score` would score it (its own file, its own card history),
 * so the figures say what the shipped model would do on the held-back months.
 */
import { createHash } from 'node:crypto';
import { artifactFormat, type ArtifactMetrics, type ModelArtifact } from './artifact.ts';
import { calibratedProbability, fitPlatt, priorShift, type Calibration } from './calibration.ts';
import { chooseThresholds, operatingPoint, riskScoreAnchors, type OperatingPoint, type OperatingThresholds } from './cost-model.ts';
import { columnIndex, type CsvTable } from './csv.ts';
import type { DatasetSpec, FeatureEncoding, ModelHyperparameters } from './datasets.ts';
import { parseLabel, type FeatureRows } from './features.ts';
import { trainBoostedTrees, type BoostedTrees } from './gradient-boosting.ts';
import { evaluateProbabilities } from './metrics.ts';
import { RiskScorer } from './scorer.ts';
import { TreeEnsemble } from './tree-ensemble.ts';

/** Share of the file (by time) kept for validation: a later, held-back file measures the model the same way. */
export const validationShare = 0.3;

export interface Labelled {
  labels: Uint8Array;
  /** Natural weights: 1 for a fraud, the case-control weight for a legitimate row. */
  weights: Float64Array;
}

export function readLabels(spec: DatasetSpec, table: CsvTable): Labelled {
  const index = columnIndex(table, spec.labelColumn);
  const labels = Uint8Array.from(table.rows, (fields, i) => parseLabel(fields[index], i + 1, spec.labelColumn));
  const weights = Float64Array.from(labels, (label) => (label === 1 ? 1 : spec.naturalLegitimateWeight));
  return { labels, weights };
}

function subTable(table: CsvTable, rows: ArrayLike<number>): CsvTable {
  return { header: table.header, rows: Array.from(rows, (i) => table.rows[i] as string[]) };
}

/** Row indexes sorted by time (then by position, so equal times keep their order). */
function timeOrder(rows: FeatureRows): number[] {
  return Array.from({ length: rows.rowCount }, (_, i) => i).sort((a, b) => (rows.timeSeconds[a] as number) - (rows.timeSeconds[b] as number) || a - b);
}

function trainOn(features: FeatureRows, labelled: Labelled, rows: ArrayLike<number>, hyper: ModelHyperparameters): BoostedTrees {
  const d = features.featureCount;
  const x = new Float64Array(rows.length * d);
  const y = new Uint8Array(rows.length);
  const w = new Float64Array(rows.length);
  for (let k = 0; k < rows.length; k += 1) {
    const i = rows[k] as number;
    x.set(features.x.subarray(i * d, (i + 1) * d), k * d);
    y[k] = labelled.labels[i] as number;
    w[k] = y[k] === 1 ? 1 : hyper.trainingLegitimateWeight;
  }
  return trainBoostedTrees({ x, featureCount: d, y, w }, hyper);
}

/** Values given in the order `order` put back at their rows' positions. */
function inRowOrder(values: Float64Array, order: number[]): Float64Array {
  const out = new Float64Array(values.length);
  order.forEach((i, k) => {
    out[i] = values[k] as number;
  });
  return out;
}

/** Out-of-fold margins: block k of the time-ordered rows is predicted by trees trained on the other blocks. */
function outOfFoldMargins(spec: DatasetSpec, table: CsvTable, labelled: Labelled, order: number[], hyper: ModelHyperparameters): Float64Array {
  const margins = new Float64Array(table.rows.length);
  const folds = hyper.calibrationFolds;
  for (let k = 0; k < folds; k += 1) {
    const from = Math.floor((k * order.length) / folds);
    const to = Math.floor(((k + 1) * order.length) / folds);
    const held = order.slice(from, to);
    const kept = [...order.slice(0, from), ...order.slice(to)];
    // The category encoding learns from labels, so it too is fitted on the other blocks only.
    const features = spec.extract(table, spec.fitEncoding(subTable(table, kept)));
    const trained = trainOn(features, labelled, kept, hyper);
    const ensemble = new TreeEnsemble(trained.baseMargin, trained.trees, features.featureCount);
    for (const i of held) margins[i] = ensemble.margin(features.x.subarray(i * features.featureCount, (i + 1) * features.featureCount));
  }
  return margins;
}

function timeLabel(spec: DatasetSpec, seconds: number): string {
  return spec.name === 'ulb' ? `Time ${seconds}` : new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

export interface TrainedModel {
  encoding: FeatureEncoding;
  trees: BoostedTrees;
  calibration: Calibration;
  thresholds: OperatingThresholds;
  outOfFold: { metrics: ArtifactMetrics; operatingPoint: OperatingPoint };
  rows: number;
  frauds: number;
  timeRange: { first: string; last: string };
}

export function trainModel(spec: DatasetSpec, table: CsvTable, hyper: ModelHyperparameters): TrainedModel {
  const labelled = readLabels(spec, table);
  const encoding = spec.fitEncoding(table);
  const features = spec.extract(table, encoding);
  const order = timeOrder(features);
  const trees = trainOn(features, labelled, order, hyper);
  // Fewer than two folds (a quick look while tuning): no out-of-fold margins, only the prior shift, and the
  // thresholds come from the training rows themselves.
  const crossFitted = hyper.calibrationFolds >= 2;
  const margins = crossFitted ? outOfFoldMargins(spec, table, labelled, order, hyper) : inRowOrder(trees.trainingMargins, order);
  const shift = priorShift(hyper.trainingLegitimateWeight, spec.naturalLegitimateWeight);
  const shifted = margins.map((margin) => margin + shift);
  const { slope, intercept } = crossFitted ? fitPlatt(shifted, labelled.labels, labelled.weights) : { slope: 1, intercept: 0 };
  const calibration: Calibration = {
    trainingLegitimateWeight: hyper.trainingLegitimateWeight,
    naturalLegitimateWeight: spec.naturalLegitimateWeight,
    priorShift: shift,
    slope,
    intercept,
  };
  const probabilities = margins.map((margin) => calibratedProbability(calibration, margin));
  const decided = { probabilities, labels: labelled.labels, weights: labelled.weights, amounts: features.amounts };
  const thresholds = chooseThresholds(spec.costModel, decided);
  const first = order[0] as number;
  const last = order[order.length - 1] as number;
  return {
    encoding,
    trees,
    calibration,
    thresholds,
    outOfFold: { metrics: evaluateProbabilities(probabilities, labelled.labels, labelled.weights), operatingPoint: operatingPoint(spec.costModel, thresholds, decided) },
    rows: table.rows.length,
    frauds: labelled.labels.reduce((sum, label) => sum + label, 0),
    timeRange: { first: timeLabel(spec, features.timeSeconds[first] as number), last: timeLabel(spec, features.timeSeconds[last] as number) },
  };
}

/** The artifact with an empty version (`buildArtifact` fills it in from a hash of the rest). */
function artifactFrom(spec: DatasetSpec, hyper: ModelHyperparameters, trained: TrainedModel, inputSha256: string, validation: ModelArtifact['validation']): ModelArtifact {
  return {
    format: artifactFormat,
    modelVersion: '',
    dataset: spec.name,
    learner: 'gradient-boosted trees, logistic loss (src/risk/model/gradient-boosting.ts)',
    labelColumn: spec.labelColumn,
    inputColumns: [...spec.inputColumns],
    features: spec.features,
    encoding: trained.encoding,
    hyperparameters: { ...hyper },
    model: { baseMargin: trained.trees.baseMargin, trees: trained.trees.trees },
    calibration: { method: 'prior shift, then Platt scaling fitted on out-of-fold margins (time blocks)', ...trained.calibration },
    costModel: spec.costModel,
    thresholds: { review: trained.thresholds.review, block: trained.thresholds.block, riskScore: { ...riskScoreAnchors }, outOfFold: trained.outOfFold.operatingPoint },
    training: {
      inputSha256,
      rows: trained.rows,
      frauds: trained.frauds,
      legitimateRows: trained.rows - trained.frauds,
      timeRange: trained.timeRange,
      outOfFoldMetrics: trained.outOfFold.metrics,
    },
    validation,
  };
}

export interface ValidationReport {
  artifactValidation: ModelArtifact['validation'];
  /** The later slice's probabilities, in its time order, with its labels: for tests and further analysis. */
  probabilities: Float64Array;
  labels: Uint8Array;
}

/** Trains on the earlier 70 % of the file (by time) and measures on the later 30 %, scored as its own file. */
export function validateOnLaterSlice(spec: DatasetSpec, table: CsvTable, hyper: ModelHyperparameters, laterShare = validationShare): ValidationReport {
  const features = spec.extract(table, spec.fitEncoding(table));
  const all = readLabels(spec, table);
  const order = timeOrder(features);
  const cutTime = features.timeSeconds[order[Math.floor(order.length * (1 - laterShare))] as number] as number;
  const earlierRows = order.filter((i) => (features.timeSeconds[i] as number) < cutTime);
  const laterRows = order.filter((i) => (features.timeSeconds[i] as number) >= cutTime);
  const earlier = subTable(table, earlierRows);
  const later = subTable(table, laterRows);
  const trained = trainModel(spec, earlier, hyper);
  const scorer = new RiskScorer(artifactFrom(spec, hyper, trained, '', emptyValidation()));
  const laterFeatures = scorer.featureRows(later);
  const labelled = readLabels(spec, later);
  const probabilities = scorer.scoreTable(later);
  const slice = (rows: number[]) => ({
    rows: rows.length,
    frauds: rows.reduce((sum, i) => sum + (all.labels[i] as number), 0),
    timeRange: { first: timeLabel(spec, features.timeSeconds[rows[0] as number] as number), last: timeLabel(spec, features.timeSeconds[rows[rows.length - 1] as number] as number) },
  });
  return {
    artifactValidation: {
      protocol: `trained on the earlier ${Math.round((1 - laterShare) * 100)} % of the file by time, measured on the later ${Math.round(laterShare * 100)} % scored as a file of its own; legitimate rows weighted ${spec.naturalLegitimateWeight}`,
      earlier: slice(earlierRows),
      later: slice(laterRows),
      metrics: evaluateProbabilities(probabilities, labelled.labels, labelled.weights),
      operatingPoint: operatingPoint(spec.costModel, trained.thresholds, { probabilities, labels: labelled.labels, weights: labelled.weights, amounts: laterFeatures.amounts }),
      thresholds: { ...trained.thresholds },
    },
    probabilities,
    labels: labelled.labels,
  };
}

function emptyValidation(): ModelArtifact['validation'] {
  const nothing = { rows: 0, frauds: 0, timeRange: { first: '', last: '' } };
  const metrics = { rows: 0, frauds: 0, legitimateRows: 0, averagePrecision: 0, rocAuc: 0, recallAtFpr0005: 0, recallAtFpr001: 0, recallAtFpr005: 0, calibration: { predictedFrauds: 0, observedFrauds: 0, ratio: 0 } };
  const point = { legitimateBlockedRate: 0, legitimateReviewedRate: 0, fraudBlockedRate: 0, fraudReviewedRate: 0, fraudStoppedRate: 0, costPerPayment: 0, costPerPaymentAllowAll: 0 };
  return { protocol: '', earlier: nothing, later: nothing, metrics, operatingPoint: point, thresholds: { review: 0, block: 0 } };
}

/**
 * The shipped model: validated on the later slice, then trained on the whole file. The version is the data set
 * and a hash of the content, so the same file and parameters always give the same artifact, byte for byte.
 */
export function buildArtifact(spec: DatasetSpec, fileText: string, table: CsvTable, hyper: ModelHyperparameters = spec.hyperparameters): ModelArtifact {
  const validation = validateOnLaterSlice(spec, table, hyper).artifactValidation;
  const trained = trainModel(spec, table, hyper);
  const inputSha256 = createHash('sha256').update(fileText).digest('hex');
  const artifact = artifactFrom(spec, hyper, trained, inputSha256, validation);
  const digest = createHash('sha256').update(JSON.stringify(artifact)).digest('hex');
  return { ...artifact, modelVersion: `${spec.name}-${digest.slice(0, 16)}` };
}
