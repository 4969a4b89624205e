/**
 * Scores payments with a model file at run time: calibrated fraud probability, a 0-100 risk score and level,
 * the action the cost model picks, and the features that pushed the score most (reason codes). Pure
 * TypeScript over typed arrays; nothing native, nothing loaded after construction.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArtifact, type ModelArtifact } from './artifact.ts';
import { calibratedProbability, type Calibration } from './calibration.ts';
import { actionFor, riskLevel, riskScore, type ModelAction, type OperatingThresholds, type RiskLevel } from './cost-model.ts';
import type { CsvTable } from './csv.ts';
import { datasets, type DatasetName } from './datasets.ts';
import { featureVector, type FeatureRows } from './features.ts';
import { TreeEnsemble } from './tree-ensemble.ts';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where the shipped model of a data set lives: `models/<dataset>.json` in the project. */
export function shippedModelPath(dataset: DatasetName): string {
  return path.join(projectRoot, 'models', `${dataset}.json`);
}

export interface Reason {
  feature: string;
  /** The feature's value for this payment. */
  value: number;
  /** What the feature added to the log-odds of fraud (positive: towards fraud). */
  contribution: number;
}

export interface Assessment {
  probability: number;
  riskScore: number;
  riskLevel: RiskLevel;
  action: ModelAction;
  reasons: Reason[];
}

export class RiskScorer {
  readonly artifact: ModelArtifact;
  readonly ensemble: TreeEnsemble;
  private readonly calibration: Calibration;
  private readonly thresholds: OperatingThresholds;
  private readonly featureNames: string[];

  constructor(artifact: ModelArtifact) {
    this.artifact = artifact;
    const spec = datasets[artifact.dataset];
    const names = artifact.features.map((feature) => feature.name);
    // The feature code is compiled in; a file listing other features was made by another version of it.
    if (names.join(',') !== spec.features.map((feature) => feature.name).join(',')) {
      throw new Error(`the model's features (${names.join(', ')}) are not the ${artifact.dataset} features this version computes`);
    }
    this.featureNames = names;
    this.ensemble = new TreeEnsemble(artifact.model.baseMargin, artifact.model.trees, names.length);
    this.calibration = artifact.calibration;
    this.thresholds = artifact.thresholds;
  }

  static fromFile(file: string): RiskScorer {
    let value: unknown;
    try {
      value = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`cannot read the model ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return new RiskScorer(parseArtifact(value));
  }

  /** The calibrated probability that the payment is fraud, at natural prevalence. */
  probability(x: ArrayLike<number>): number {
    return calibratedProbability(this.calibration, this.ensemble.margin(x));
  }

  /** Probability, score, level, action, and the `reasonCount` features that added most to the fraud odds. */
  assess(x: ArrayLike<number>, reasonCount = 3): Assessment {
    const { perFeature } = this.ensemble.contributions(x);
    const probability = this.probability(x);
    const score = riskScore(this.thresholds, probability);
    const order = Array.from(perFeature.keys()).sort((a, b) => (perFeature[b] as number) - (perFeature[a] as number) || a - b);
    const reasons = order.slice(0, reasonCount).map((j) => ({ feature: this.featureNames[j] as string, value: x[j] as number, contribution: perFeature[j] as number }));
    return { probability, riskScore: score, riskLevel: riskLevel(score), action: actionFor(this.thresholds, probability), reasons };
  }

  /** Features of every row of a file with this data set's columns (the label column, if any, is ignored). */
  featureRows(table: CsvTable): FeatureRows {
    return datasets[this.artifact.dataset].extract(table, this.artifact.encoding);
  }

  /** One calibrated probability per row, in the file's order. */
  scoreTable(table: CsvTable): Float64Array {
    const rows = this.featureRows(table);
    const probabilities = new Float64Array(rows.rowCount);
    for (let i = 0; i < rows.rowCount; i += 1) probabilities[i] = this.probability(featureVector(rows, i));
    return probabilities;
  }
}
