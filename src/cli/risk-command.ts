import fs from 'node:fs';
import path from 'node:path';
import type { ModelArtifact } from '../risk/model/artifact.ts';
import { CsvInputError, formatCsv, parseCsv } from '../risk/model/csv.ts';
import { datasets, isDatasetName, type DatasetName, type DatasetSpec } from '../risk/model/datasets.ts';
import { featureVector } from '../risk/model/features.ts';
import type { EvaluationMetrics } from '../risk/model/metrics.ts';
import { formatArtifact } from '../risk/model/artifact-file.ts';
import { RiskScorer, shippedModelPath } from '../risk/model/scorer.ts';
import { buildArtifact, validateOnLaterSlice } from '../risk/model/training.ts';
import type { OperatingPoint } from '../risk/model/cost-model.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { parseCommandLine, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';

export const riskUsage = `Usage:
  coffer risk train --dataset ulb|sparkov --input FILE [--output FILE] [--legitimate-weight W]
      train on a labelled CSV (its columns: docs/risk-model.md, "Training data") and write the
      model file (default models/<dataset>.json): validated on the file's later 30 % by time, then trained on all of it.
      W: how many legitimate payments one legitimate row stands for (default: the data set's case-control weight;
      1 for a complete history of your own)
  coffer risk evaluate --dataset ulb|sparkov --input FILE [--model FILE]
      train with the model's parameters on the earlier 70 % of the file by time, score the later 30 %, print the metrics
  coffer risk score --dataset ulb|sparkov --input IN.csv --output OUT.csv [--model FILE]
      one calibrated fraud probability per input row, in order, under the header "probability"
  coffer risk explain --dataset ulb|sparkov --input IN.csv [--model FILE] [--rows N]
      for the first N rows (default 5): probability, risk score and level, action, and the top reasons
  coffer risk export --output FILE [--merchant acct_…] [--test-mode] [--since YYYY-MM-DD] [--min-age-days N]
      Coffer's decided card payments with their labels (rejected reviews, fraud disputes) as a training file in the
      Sparkov columns, for: coffer risk train --dataset sparkov --input FILE --legitimate-weight 1 (opens the database;
      blocked payments and unlabelled ones younger than N days, default 30, are left out)
Exit codes: 0 done; 1 an input file is not what the data set expects (the message says where); 2 a usage error;
  export: ${databaseExitCodes}.`;

/** A file given with --input: one that cannot be read is the operator's error, named, like a bad one. */
function readInput(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : String(error);
    throw new CsvInputError(`cannot read it (${why})`, null, null);
  }
}

function percent(value: number): string {
  return `${(value * 100).toFixed(2)} %`;
}

function printMetrics(print: (line: string) => void, metrics: EvaluationMetrics): void {
  print(`  rows ${metrics.rows}, frauds ${metrics.frauds}, legitimate ${metrics.legitimateRows}`);
  print(`  weighted AUPRC (natural prevalence)   ${metrics.averagePrecision.toFixed(4)}`);
  print(`  ROC-AUC                               ${metrics.rocAuc.toFixed(4)}`);
  print(`  recall at 0.5 % / 1 % / 5 % FPR       ${metrics.recallAtFpr0005.toFixed(3)} / ${metrics.recallAtFpr001.toFixed(3)} / ${metrics.recallAtFpr005.toFixed(3)}`);
  const { predictedFrauds, observedFrauds, ratio } = metrics.calibration;
  print(`  calibration: predicted ${predictedFrauds.toFixed(1)} frauds vs observed ${observedFrauds} (ratio ${ratio.toFixed(3)})`);
}

function printOperatingPoint(print: (line: string) => void, thresholds: { review: number; block: number }, point: OperatingPoint): void {
  const at = (threshold: number) => (threshold > 1 ? 'never' : `at p >= ${threshold.toPrecision(3)}`);
  print(`  thresholds: review ${at(thresholds.review)}, block ${at(thresholds.block)}`);
  print(`  legitimate payments blocked ${percent(point.legitimateBlockedRate)}, reviewed ${percent(point.legitimateReviewedRate)}`);
  print(`  frauds blocked ${percent(point.fraudBlockedRate)}, reviewed ${percent(point.fraudReviewedRate)}, stopped ${percent(point.fraudStoppedRate)}`);
  print(`  cost per payment ${point.costPerPayment.toFixed(3)} (allowing everything: ${point.costPerPaymentAllowAll.toFixed(3)})`);
}

function printValidation(print: (line: string) => void, validation: ModelArtifact['validation']): void {
  print(`Validation: ${validation.protocol}`);
  print(`  earlier slice ${validation.earlier.timeRange.first} .. ${validation.earlier.timeRange.last}: ${validation.earlier.rows} rows, ${validation.earlier.frauds} frauds`);
  print(`  later slice   ${validation.later.timeRange.first} .. ${validation.later.timeRange.last}: ${validation.later.rows} rows, ${validation.later.frauds} frauds`);
  printMetrics(print, validation.metrics);
  printOperatingPoint(print, validation.thresholds, validation.operatingPoint);
}

function readTable(file: string) {
  return parseCsv(readInput(file));
}

function loadScorer(dataset: DatasetName, modelFile: string | undefined): RiskScorer {
  const scorer = RiskScorer.fromFile(modelFile ?? shippedModelPath(dataset));
  if (scorer.artifact.dataset !== dataset) throw new Error(`the model ${modelFile ?? ''} is for ${scorer.artifact.dataset}, not ${dataset}`);
  return scorer;
}

/**
 * The data set's spec with another case-control weight: a file that is not a case-control sample (an operator's
 * full history) has weight 1. A data set trained at its natural weight keeps training at the new one.
 */
function withLegitimateWeight(spec: DatasetSpec, weight: number): DatasetSpec {
  if (weight === spec.naturalLegitimateWeight) return spec;
  const { hyperparameters } = spec;
  const trainingLegitimateWeight = hyperparameters.trainingLegitimateWeight === spec.naturalLegitimateWeight ? weight : hyperparameters.trainingLegitimateWeight;
  return { ...spec, naturalLegitimateWeight: weight, hyperparameters: { ...hyperparameters, trainingLegitimateWeight } };
}

function train(dataset: DatasetName, input: string, output: string, legitimateWeight: number | undefined, print: (line: string) => void): number {
  const text = readInput(input);
  const spec = withLegitimateWeight(datasets[dataset], legitimateWeight ?? datasets[dataset].naturalLegitimateWeight);
  const artifact = buildArtifact(spec, text, parseCsv(text), spec.hyperparameters);
  fs.mkdirSync(path.dirname(output), { recursive: true });
  fs.writeFileSync(output, formatArtifact(artifact));
  print(`Model ${artifact.modelVersion} written to ${output}`);
  print(`Trained on ${artifact.training.rows} rows (${artifact.training.frauds} frauds), ${artifact.training.timeRange.first} .. ${artifact.training.timeRange.last}; ${artifact.model.trees.length} trees`);
  print(`Calibration: slope ${artifact.calibration.slope.toFixed(4)}, intercept ${artifact.calibration.intercept.toFixed(4)} after a prior shift of ${artifact.calibration.priorShift.toFixed(4)}`);
  printOperatingPoint(print, artifact.thresholds, artifact.thresholds.outOfFold);
  printValidation(print, artifact.validation);
  return 0;
}

function evaluate(dataset: DatasetName, input: string, modelFile: string | undefined, print: (line: string) => void): number {
  const scorer = loadScorer(dataset, modelFile);
  const hyper = scorer.artifact.hyperparameters;
  print(`Parameters of model ${scorer.artifact.modelVersion}: ${hyper.trees} trees, depth ${hyper.maxDepth}, learning rate ${hyper.learningRate}`);
  const spec = withLegitimateWeight(datasets[dataset], scorer.artifact.calibration.naturalLegitimateWeight);
  let report: ReturnType<typeof validateOnLaterSlice>;
  try {
    report = validateOnLaterSlice(spec, readTable(input), hyper);
  } catch (error) {
    // The model is trained again on the file's earlier 70 %, and judged on the rest: say which part fell short.
    throw new Error(`${input}: the model is trained again on the earlier 70 % of its rows, and cannot be: ${error instanceof Error ? error.message : String(error)}`);
  }
  printValidation(print, report.artifactValidation);
  if (JSON.stringify(report.artifactValidation) === JSON.stringify(scorer.artifact.validation)) {
    print('These are the figures stored in the model file: training is reproducible.');
  }
  return 0;
}

function score(dataset: DatasetName, input: string, output: string, modelFile: string | undefined, print: (line: string) => void): number {
  const scorer = loadScorer(dataset, modelFile);
  const probabilities = scorer.scoreTable(readTable(input));
  fs.writeFileSync(output, formatCsv(['probability'], Array.from(probabilities, (p) => [String(p)])));
  print(`Scored ${probabilities.length} rows with ${scorer.artifact.modelVersion} into ${output}`);
  return 0;
}

function explain(dataset: DatasetName, input: string, modelFile: string | undefined, rows: number, print: (line: string) => void): number {
  const scorer = loadScorer(dataset, modelFile);
  const features = scorer.featureRows(readTable(input));
  for (let i = 0; i < Math.min(rows, features.rowCount); i += 1) print(JSON.stringify({ row: i + 1, ...scorer.assess(featureVector(features, i)) }));
  return 0;
}

/** `coffer risk …` but export: the fraud model, on files alone. Returns the exit code; a usage error is thrown. */
export function commandRisk(argv: string[], print: (line: string) => void): number {
  const parsed = parseCommandLine('risk', argv, {
    dataset: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, model: { type: 'string' }, rows: { type: 'string' },
    'legitimate-weight': { type: 'string' },
  }, riskUsage);
  if (parsed.help) {
    print(riskUsage);
    return 0;
  }
  const sub = subcommand('risk', parsed.positionals[0], ['train', 'evaluate', 'score', 'explain', 'export'], riskUsage);
  // `coffer risk export` is dispatched on its first word; after an option it would land here.
  if (sub === 'export') throw new UsageError('write coffer risk export first, then its options', riskUsage);
  refuseExtraArguments(`risk ${sub}`, parsed.positionals, 1, riskUsage);
  const { dataset, input, output, model, rows } = parsed.values;
  if (dataset === undefined || !isDatasetName(dataset)) throw new UsageError('--dataset must be ulb or sparkov', riskUsage);
  if (rows !== undefined && !/^\d{1,6}$/.test(rows)) throw new UsageError(`--rows must be a whole number, got "${rows}"`, riskUsage);
  const weightText = parsed.values['legitimate-weight'];
  const legitimateWeight = weightText === undefined ? undefined : Number(weightText);
  if (legitimateWeight !== undefined && !(legitimateWeight >= 1 && Number.isFinite(legitimateWeight))) {
    throw new UsageError('--legitimate-weight must be a number of at least 1', riskUsage);
  }
  try {
    switch (sub) {
      case 'train':
        if (input === undefined) throw new UsageError('risk train needs --input: a labelled CSV of the data set', riskUsage);
        return train(dataset, input, output ?? shippedModelPath(dataset), legitimateWeight, print);
      case 'evaluate':
        if (input === undefined) throw new UsageError('risk evaluate needs --input: a labelled CSV of the data set', riskUsage);
        return evaluate(dataset, input, model, print);
      case 'score':
        if (input === undefined || output === undefined) throw new UsageError('risk score needs --input and --output', riskUsage);
        return score(dataset, input, output, model, print);
      case 'explain':
        if (input === undefined) throw new UsageError('risk explain needs --input', riskUsage);
        return explain(dataset, input, model, rows === undefined ? 5 : Number(rows), print);
    }
  } catch (error) {
    // A bad input file is the operator's error to fix: say where, and exit 1 (not a crash).
    if (error instanceof CsvInputError) {
      process.stderr.write(`coffer: ${input ?? ''}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
