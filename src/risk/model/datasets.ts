/**
 * The two labelled data sets the model is built from (their columns: docs/risk-model.md, "Training data") and what differs
 * between them: columns, label, case-control weight, features, the hyperparameters chosen on the validation
 * slice (docs/decisions/0013-risk-model.md has the search), and the cost model in each one's currency.
 */
import type { CsvTable } from './csv.ts';
import type { CostModel } from './cost-model.ts';
import type { FeatureDefinition, FeatureRows } from './features.ts';
import type { BoostingParameters } from './gradient-boosting.ts';
import { extractSparkovFeatures, fitSparkovEncoding, sparkovFeatures, sparkovInputColumns, type SparkovEncoding } from './sparkov-features.ts';
import { extractUlbFeatures, ulbFeatures, ulbInputColumns } from './ulb-features.ts';

export const datasetNames = ['ulb', 'sparkov'] as const;
export type DatasetName = (typeof datasetNames)[number];

export function isDatasetName(value: string): value is DatasetName {
  return (datasetNames as readonly string[]).includes(value);
}

/** Learned from the training rows and needed again at scoring time (null when the features need nothing). */
export type FeatureEncoding = SparkovEncoding | null;

export interface ModelHyperparameters extends BoostingParameters {
  /** Weight of a legitimate row in the trees' loss; the prior shift corrects for it (calibration.ts). */
  trainingLegitimateWeight: number;
  /** Contiguous time blocks for the out-of-fold margins that calibration and thresholds are fitted on. */
  calibrationFolds: number;
}

export interface DatasetSpec {
  name: DatasetName;
  labelColumn: string;
  /** How many legitimate payments of the full data one legitimate row of the file stands for. */
  naturalLegitimateWeight: number;
  /** Columns the features are computed from (the file may have more; they are ignored). */
  inputColumns: readonly string[];
  features: FeatureDefinition[];
  fitEncoding: (table: CsvTable) => FeatureEncoding;
  extract: (table: CsvTable, encoding: FeatureEncoding) => FeatureRows;
  hyperparameters: ModelHyperparameters;
  costModel: CostModel;
}

/** Shared by both: a payment business's view of its own errors (docs/risk-model.md explains the numbers). */
const costModelBase = {
  chargebackFee: 15,
  grossMarginRate: 0.25,
  declineFriction: 10,
  reviewCost: 4,
  reviewFraudCatchRate: 0.9,
  blockRateMax: 0.001,
  reviewRateMax: 0.01,
};

const ulb: DatasetSpec = {
  name: 'ulb',
  labelColumn: 'Class',
  naturalLegitimateWeight: 284_315 / 2_000,
  inputColumns: ulbInputColumns,
  features: ulbFeatures,
  fitEncoding: () => null,
  extract: (table) => extractUlbFeatures(table),
  hyperparameters: {
    trees: 400,
    learningRate: 0.01,
    maxDepth: 5,
    minChildWeight: 1,
    l2: 1,
    minSplitGain: 0,
    rowSubsample: 0.3,
    columnSubsample: 0.5,
    bins: 64,
    seed: 13,
    trainingLegitimateWeight: 1,
    calibrationFolds: 5,
  },
  costModel: { currency: 'eur', ...costModelBase },
};

const sparkov: DatasetSpec = {
  name: 'sparkov',
  labelColumn: 'is_fraud',
  naturalLegitimateWeight: 553_574 / 5_000,
  inputColumns: sparkovInputColumns,
  features: sparkovFeatures,
  fitEncoding: (table) => fitSparkovEncoding(table, 'is_fraud', 553_574 / 5_000),
  extract: (table, encoding) => {
    if (encoding === null) throw new Error('the sparkov features need their category encoding');
    return extractSparkovFeatures(table, encoding);
  },
  hyperparameters: {
    trees: 800,
    learningRate: 0.03,
    maxDepth: 3,
    minChildWeight: 1,
    l2: 1,
    minSplitGain: 0,
    rowSubsample: 0.8,
    columnSubsample: 0.8,
    bins: 64,
    seed: 13,
    trainingLegitimateWeight: 553_574 / 5_000,
    calibrationFolds: 5,
  },
  costModel: { currency: 'usd', ...costModelBase },
};

export const datasets: Record<DatasetName, DatasetSpec> = { ulb, sparkov };
