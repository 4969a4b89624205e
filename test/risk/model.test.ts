import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseArtifact } from '../../src/risk/model/artifact.ts';
import { formatArtifact } from '../../src/risk/model/artifact-file.ts';
import { calibratedProbability, fitPlatt, priorShift } from '../../src/risk/model/calibration.ts';
import { actionFor, chooseThresholds, operatingPoint, riskLevel, riskScore, type CostModel } from '../../src/risk/model/cost-model.ts';
import { CsvInputError, formatCsv, parseCsv, type CsvTable } from '../../src/risk/model/csv.ts';
import { datasets } from '../../src/risk/model/datasets.ts';
import { featureVector } from '../../src/risk/model/features.ts';
import { trainBoostedTrees, type BoostingParameters } from '../../src/risk/model/gradient-boosting.ts';
import { averagePrecision, calibrationCheck, recallAtFpr, rocAuc } from '../../src/risk/model/metrics.ts';
import { RiskScorer, shippedModelPath } from '../../src/risk/model/scorer.ts';
import { seededRandom } from '../../src/risk/model/seeded-random.ts';
import { extractSparkovFeatures, fitSparkovEncoding, sparkovFeatures } from '../../src/risk/model/sparkov-features.ts';
import { TreeEnsemble } from '../../src/risk/model/tree-ensemble.ts';
import { readLabels, trainModel } from '../../src/risk/model/training.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const dataDir = path.resolve(root, '..', 'shared', 'fraud-data');
const noData = fs.existsSync(path.join(dataDir, 'sparkov-train.csv')) ? false : 'the fraud data (../shared/fraud-data) is not beside the project';
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-risk-model-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const smallBoosting: BoostingParameters = { trees: 40, learningRate: 0.2, maxDepth: 3, minChildWeight: 0.1, l2: 1, minSplitGain: 0, rowSubsample: 0.8, columnSubsample: 1, bins: 32, seed: 5 };

/** Two features; fraud when the first is high, the second is noise. */
function syntheticSet(rows: number, seed: number) {
  const random = seededRandom(seed);
  const x = new Float64Array(rows * 2);
  const y = new Uint8Array(rows);
  for (let i = 0; i < rows; i += 1) {
    x[i * 2] = random();
    x[i * 2 + 1] = random();
    y[i] = (x[i * 2] as number) > 0.7 ? (random() < 0.9 ? 1 : 0) : random() < 0.05 ? 1 : 0;
  }
  return { x, featureCount: 2, y, w: new Float64Array(rows).fill(1) };
}

// Goal: the measures match values worked out by hand, including ties and weights.
describe('metrics', () => {
  // Scores 0.9 (fraud), 0.8 (legit, weight 2), 0.7 (fraud), 0.6 (legit, weight 2).
  const data = { scores: [0.9, 0.8, 0.7, 0.6], labels: [1, 0, 1, 0], weights: [1, 2, 1, 2] };

  test('average precision: recall 1/2 at precision 1, then recall 1 at precision 2/4', () => {
    assert.equal(averagePrecision(data), 0.5 * 1 + 0.5 * 0.5);
  });

  test('ROC-AUC: the first fraud outranks both legitimate rows, the second one of them (weight 2 of 4)', () => {
    assert.equal(rocAuc(data), (1 * 4 + 1 * 2) / (2 * 4));
  });

  test('recall at a false-positive rate takes the last threshold within the rate', () => {
    assert.equal(recallAtFpr(data, 0), 0.5);
    assert.equal(recallAtFpr(data, 0.49), 0.5);
    assert.equal(recallAtFpr(data, 0.5), 1);
  });

  test('tied scores form one threshold: AUC 1/2 and precision 1/2', () => {
    const tied = { scores: [0.5, 0.5], labels: [1, 0], weights: [1, 1] };
    assert.equal(rocAuc(tied), 0.5);
    assert.equal(averagePrecision(tied), 0.5);
  });

  test('calibration: weighted sum of probabilities against weighted frauds', () => {
    assert.deepEqual(calibrationCheck([0.1, 0.5], [0, 1], [10, 1]), { predictedFrauds: 1.5, observedFrauds: 1, ratio: 1.5 });
  });
});

// Goal: the prior shift and Platt scaling recover known probabilities.
describe('calibration', () => {
  test('the prior shift turns balanced odds into the natural ones', () => {
    const calibration = { trainingLegitimateWeight: 1, naturalLegitimateWeight: 142, priorShift: priorShift(1, 142), slope: 1, intercept: 0 };
    assert.ok(Math.abs(calibratedProbability(calibration, 0) - 1 / 143) < 1e-12);
  });

  test('Platt scaling finds the slope and intercept that generated the labels', () => {
    const random = seededRandom(3);
    const inputs = Float64Array.from({ length: 20_000 }, () => (random() - 0.5) * 6);
    const labels = Float64Array.from(inputs, (input) => (random() < 1 / (1 + Math.exp(-(2 * input - 1))) ? 1 : 0));
    const { slope, intercept } = fitPlatt(inputs, labels, new Float64Array(inputs.length).fill(1));
    assert.ok(Math.abs(slope - 2) < 0.1, `slope ${slope}`);
    assert.ok(Math.abs(intercept + 1) < 0.1, `intercept ${intercept}`);
  });
});

// Goal: the trainer learns, is deterministic, and the scorer's tree walk gives exactly the trainer's margins.
describe('gradient-boosted trees', () => {
  const set = syntheticSet(2000, 11);

  test('the scorer reproduces the trainer bit for bit, and the contributions add up to the margin', () => {
    const trained = trainBoostedTrees(set, smallBoosting);
    const ensemble = new TreeEnsemble(trained.baseMargin, trained.trees, 2);
    for (let i = 0; i < 2000; i += 1) {
      const x = set.x.subarray(i * 2, i * 2 + 2);
      assert.equal(ensemble.margin(x), trained.trainingMargins[i]);
      const { bias, perFeature } = ensemble.contributions(x);
      assert.ok(Math.abs(bias + (perFeature[0] as number) + (perFeature[1] as number) - ensemble.margin(x)) < 1e-9);
    }
    // The informative feature dominates the explanation of a high-risk row.
    const { perFeature } = ensemble.contributions([0.95, 0.5]);
    assert.ok((perFeature[0] as number) > 1 && Math.abs(perFeature[1] as number) < (perFeature[0] as number) / 3);
    assert.ok(ensemble.margin([0.95, 0.5]) > ensemble.margin([0.2, 0.5]) + 3);
  });

  test('the same data and seed give the same trees; another seed gives other trees', () => {
    const once = trainBoostedTrees(set, smallBoosting);
    assert.deepEqual(trainBoostedTrees(set, smallBoosting).trees, once.trees);
    assert.notDeepEqual(trainBoostedTrees(set, { ...smallBoosting, seed: 6 }).trees, once.trees);
  });

  test('it ranks held-out rows it never saw', () => {
    const trained = trainBoostedTrees(set, smallBoosting);
    const ensemble = new TreeEnsemble(trained.baseMargin, trained.trees, 2);
    const test = syntheticSet(2000, 12);
    const scores = Array.from({ length: 2000 }, (_, i) => ensemble.margin(test.x.subarray(i * 2, i * 2 + 2)));
    assert.ok(rocAuc({ scores, labels: test.y, weights: test.w }) > 0.9);
  });
});

// Goal: thresholds come from the cost model and respect its caps; the score and level follow them.
describe('cost model', () => {
  const model: CostModel = { currency: 'usd', chargebackFee: 15, grossMarginRate: 0.25, declineFriction: 10, reviewCost: 4, reviewFraudCatchRate: 0.9, blockRateMax: 0.01, reviewRateMax: 0.1 };

  test('blocking sure frauds, allowing the rest, is what the costs choose when probabilities are sharp', () => {
    const probabilities = [0.99, 0.98, 0.001, 0.002, 0.003, 0.001, 0.002, 0.001, 0.002, 0.001];
    const labels = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    const data = { probabilities, labels, weights: labels.map((label) => (label === 1 ? 1 : 100)), amounts: probabilities.map(() => 100) };
    const thresholds = chooseThresholds(model, data);
    assert.ok(thresholds.block > 0.003 && thresholds.block <= 0.98, JSON.stringify(thresholds));
    const point = operatingPoint(model, thresholds, data);
    assert.equal(point.fraudBlockedRate, 1);
    assert.equal(point.legitimateBlockedRate, 0);
    assert.ok(point.costPerPayment < point.costPerPaymentAllowAll);
  });

  test('the block cap holds even when blocking more would be cheaper', () => {
    // Half the legitimate weight sits with the frauds at p = 0.5: blocking them all would block 1 % of it.
    const probabilities = [0.5, 0.5, 0.01, 0.01];
    const labels = [1, 0, 0, 0];
    const data = { probabilities, labels, weights: [1000, 1, 50, 49], amounts: [100, 100, 100, 100] };
    const thresholds = chooseThresholds({ ...model, blockRateMax: 0.005 }, data);
    assert.equal(operatingPoint({ ...model, blockRateMax: 0.005 }, thresholds, data).legitimateBlockedRate, 0);
  });

  test('risk score: 65 at the review threshold, 75 at the block threshold, monotone, levels and actions agree', () => {
    const thresholds = { review: 0.01, block: 0.2 };
    assert.equal(riskScore(thresholds, 0.01), 65);
    assert.equal(riskScore(thresholds, 0.2), 75);
    assert.equal(riskScore(thresholds, 0.009), 64);
    let previous = -1;
    for (let p = 1e-7; p < 1; p *= 1.5) {
      const score = riskScore(thresholds, p);
      assert.ok(score >= previous && score >= 0 && score <= 100);
      previous = score;
      const expected = { allow: 'normal', review: 'elevated', block: 'highest' }[actionFor(thresholds, p)];
      assert.equal(riskLevel(score), expected, `p ${p}`);
    }
  });
});

// Goal: files are read as RFC 4180 says, and a bad value is reported with its row and column.
describe('CSV and features', () => {
  const header = 'trans_date_trans_time,cc_num,merchant,category,amt,lat,long,dob,merch_lat,merch_long,is_fraud';
  const lines = [
    '2020-07-01 10:00:00,111,"Shop, Inc",grocery_pos,10.00,40,-75,1980-07-01,40.1,-75.1,0',
    '2020-07-01 20:00:00,111,"Shop ""B""",grocery_pos,30.00,40,-75,1980-07-01,40.1,-75.1,1',
    '2020-07-01 20:00:00,111,Shop,shopping_net,50.00,40,-75,1980-07-01,40.1,-75.1,1',
    '2020-07-05 09:00:00,111,Shop,shopping_net,90.00,40,-75,1980-07-01,40.1,-75.1,1',
    '2020-07-01 12:00:00,222,Shop,travel,5.00,30,-90,2000-01-01,30,-90,0',
  ];
  const table = parseCsv(`${header}\n${lines.join('\r\n')}\n`);
  const encoding = fitSparkovEncoding(table, 'is_fraud', 100);

  test('quoted fields keep their commas and quotes', () => {
    assert.equal(table.rows.length, 5);
    assert.equal(table.rows[0]?.[2], 'Shop, Inc');
    assert.equal(table.rows[1]?.[2], 'Shop "B"');
    assert.deepEqual(parseCsv(formatCsv(table.header, table.rows)), table);
  });

  test('card history counts only strictly earlier payments of the same card, whatever the row order', () => {
    const features = extractSparkovFeatures(table, encoding);
    const at = (row: number, name: string) => featureVector(features, row)[sparkovFeatures.findIndex((feature) => feature.name === name)];
    assert.equal(at(0, 'card_count_before'), 0);
    assert.equal(at(0, 'hours_since_card_previous'), 720);
    // Rows 2 and 3 are at the same second: each sees only row 1.
    assert.equal(at(1, 'card_count_24h'), 1);
    assert.equal(at(2, 'card_count_24h'), 1);
    assert.equal(at(2, 'card_amount_24h'), 10);
    assert.equal(at(1, 'hours_since_card_previous'), 10);
    // Four days later: nothing in 24 hours, all three in 7 days, amount against their mean of 30.
    assert.equal(at(3, 'card_count_24h'), 0);
    assert.equal(at(3, 'card_count_7d'), 3);
    assert.equal(at(3, 'card_amount_7d'), 90);
    assert.equal(at(3, 'amount_to_card_mean'), 3);
    assert.equal(at(4, 'card_count_before'), 0);
    assert.ok(Math.abs((at(0, 'cardholder_age_years') as number) - 40) < 0.01);
    const reversed: CsvTable = { header: table.header, rows: [...table.rows].reverse() };
    const again = extractSparkovFeatures(reversed, encoding);
    for (let i = 0; i < 5; i += 1) assert.deepEqual(featureVector(again, 4 - i), featureVector(features, i));
  });

  test('a category the training data did not have gets the overall log-odds', () => {
    const unknown = parseCsv(`${header}\n${lines[0]?.replace('grocery_pos', 'space_travel')}\n`);
    const features = extractSparkovFeatures(unknown, encoding);
    assert.equal(featureVector(features, 0)[1], encoding.unknownCategoryRisk);
    assert.ok(encoding.categoryRisk.shopping_net !== undefined && encoding.categoryRisk.shopping_net > encoding.unknownCategoryRisk);
  });

  test('a garbled or missing value is an error naming the row and the column', () => {
    const garbled = parseCsv(`${header}\n${lines[0]}\n${lines[1]?.replace('30.00', '3O.00')}\n`);
    assert.throws(() => extractSparkovFeatures(garbled, encoding), (error: unknown) => error instanceof CsvInputError && error.row === 2 && error.column === 'amt' && /row 2, column amt: "3O.00"/.test(error.message));
    const missing = parseCsv(`${header}\n${lines[0]?.replace('1980-07-01', '')}\n`);
    assert.throws(() => extractSparkovFeatures(missing, encoding), /row 1, column dob: the value is missing/);
    const badDate = parseCsv(`${header}\n${lines[0]?.replace('2020-07-01 10:00:00', '2020-02-30 10:00:00')}\n`);
    assert.throws(() => extractSparkovFeatures(badDate, encoding), /row 1, column trans_date_trans_time: .*not a valid date/);
    assert.throws(() => parseCsv(`${header}\n1,2,3\n`), /row 1: has 3 fields/);
  });
});

// Goal: the shipped model files load, score, explain, and are what `coffer risk train` makes from the data.
describe('the shipped models', () => {
  for (const dataset of ['ulb', 'sparkov'] as const) {
    test(`${dataset}: loads, scores the training file into [0, 1], explains, and is reasonably calibrated`, { skip: noData }, () => {
      const scorer = RiskScorer.fromFile(shippedModelPath(dataset));
      assert.equal(scorer.artifact.dataset, dataset);
      const table = parseCsv(fs.readFileSync(path.join(dataDir, `${dataset}-train.csv`), 'utf8'));
      const probabilities = scorer.scoreTable(table);
      const { labels, weights } = readLabels(datasets[dataset], table);
      assert.equal(probabilities.length, table.rows.length);
      assert.ok(probabilities.every((p) => p >= 0 && p <= 1));
      // Deterministic: scoring twice gives the same numbers.
      assert.deepEqual(scorer.scoreTable(table), probabilities);
      // The stored validation (a slice the model's trainer had not seen) is calibrated within the 0.5-2 band and ranks well.
      const { metrics } = scorer.artifact.validation;
      assert.ok(metrics.calibration.ratio > 0.5 && metrics.calibration.ratio < 2, `ratio ${metrics.calibration.ratio}`);
      assert.ok(metrics.averagePrecision > 0.8 && metrics.frauds > 100);
      // On its own training rows the model ranks frauds first.
      assert.ok(rocAuc({ scores: probabilities, labels, weights }) > 0.99);
      assert.ok(averagePrecision({ scores: probabilities, labels, weights }) > 0.8);
      const features = scorer.featureRows(table);
      const fraudRow = labels.findIndex((label, i) => label === 1 && (probabilities[i] as number) > 0.5);
      const assessment = scorer.assess(featureVector(features, fraudRow));
      assert.equal(assessment.probability, probabilities[fraudRow]);
      assert.equal(assessment.reasons.length, 3);
      assert.ok(assessment.reasons[0] !== undefined && assessment.reasons[0].contribution > 0);
      assert.ok(assessment.riskScore >= 65 && assessment.action !== 'allow');
    });
  }

  for (const dataset of ['ulb', 'sparkov'] as const) {
    test(`${dataset}: retraining at the shipped parameters gives the shipped trees, calibration and thresholds, and the scorer reproduces the trainer's margins`, { skip: noData }, () => {
      const shipped = fs.readFileSync(shippedModelPath(dataset), 'utf8');
      const artifact = parseArtifact(JSON.parse(shipped));
      // The file is exactly what the trainer writes for that content (one tree per line, shortest round-trip numbers).
      assert.equal(formatArtifact(artifact), shipped);
      const table = parseCsv(fs.readFileSync(path.join(dataDir, `${dataset}-train.csv`), 'utf8'));
      const trained = trainModel(datasets[dataset], table, artifact.hyperparameters);
      assert.deepEqual(trained.trees.trees, artifact.model.trees);
      assert.equal(trained.trees.baseMargin, artifact.model.baseMargin);
      assert.equal(trained.calibration.slope, artifact.calibration.slope);
      assert.equal(trained.calibration.intercept, artifact.calibration.intercept);
      assert.deepEqual(trained.thresholds, { review: artifact.thresholds.review, block: artifact.thresholds.block });
      const scorer = new RiskScorer(artifact);
      const features = scorer.featureRows(table);
      // The trainer keeps its margins in time order.
      const order = Array.from({ length: features.rowCount }, (_, i) => i).sort((a, b) => (features.timeSeconds[a] as number) - (features.timeSeconds[b] as number) || a - b);
      order.forEach((row, k) => assert.equal(scorer.ensemble.margin(featureVector(features, row)), trained.trees.trainingMargins[k]));
    });
  }
});

function coffer(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(root, 'bin/coffer.js'), ...args], { env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function withoutLabel(text: string, label: string, rows?: (rows: string[][]) => string[][]): { file: string; table: CsvTable } {
  const table = parseCsv(text);
  const drop = table.header.indexOf(label);
  const kept = { header: table.header.filter((_, j) => j !== drop), rows: (rows ?? ((r) => r))(table.rows).map((fields) => fields.filter((_, j) => j !== drop)) };
  const file = path.join(scratch, `${label}-${Math.random().toString(36).slice(2)}.csv`);
  fs.writeFileSync(file, formatCsv(kept.header, kept.rows));
  return { file, table: kept };
}

// The scoring interface without the training data (a clone elsewhere than beside ../shared): made-up ULB rows.
describe('coffer risk score on made-up rows', () => {
  test('ulb: one probability per row, in order, equal to the scorer in process', () => {
    const header = ['Time', ...Array.from({ length: 28 }, (_, i) => `V${i + 1}`), 'Amount'];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const rows = Array.from({ length: 40 }, (_, r) => [String(r * 97), ...Array.from({ length: 28 }, () => ((next() - 0.5) * 6).toFixed(4)), (next() * 500).toFixed(2)]);
    const input = path.join(scratch, 'made-up-ulb.csv');
    fs.writeFileSync(input, formatCsv(header, rows));
    const output = path.join(scratch, 'made-up-ulb-out.csv');
    const result = coffer(['risk', 'score', '--dataset', 'ulb', '--input', input, '--output', output]);
    assert.equal(result.status, 0, result.stderr);
    const lines = fs.readFileSync(output, 'utf8').trimEnd().split('\n');
    assert.equal(lines[0], 'probability');
    assert.equal(lines.length, rows.length + 1);
    const expected = RiskScorer.fromFile(shippedModelPath('ulb')).scoreTable({ header, rows });
    lines.slice(1).forEach((line, i) => assert.equal(Number(line), expected[i]));
  });
});

// Goal: `coffer risk score` is exactly the interface the held-back evaluation uses.
describe('coffer risk score', { skip: noData }, () => {
  test('sparkov: one probability per row in the input order, equal to the scorer in process; reversed input, reversed output', () => {
    const text = fs.readFileSync(path.join(dataDir, 'sparkov-train.csv'), 'utf8');
    const input = withoutLabel(text, 'is_fraud', (rows) => rows.slice(0, 1500));
    const output = path.join(scratch, 'sparkov-out.csv');
    const result = coffer(['risk', 'score', '--dataset', 'sparkov', '--input', input.file, '--output', output]);
    assert.equal(result.status, 0, result.stderr);
    const lines = fs.readFileSync(output, 'utf8').trimEnd().split('\n');
    assert.equal(lines[0], 'probability');
    assert.equal(lines.length, 1501);
    const expected = RiskScorer.fromFile(shippedModelPath('sparkov')).scoreTable(input.table);
    lines.slice(1).forEach((line, i) => {
      const p = Number(line);
      assert.ok(p >= 0 && p <= 1);
      assert.equal(p, expected[i]);
    });
    const reversed = withoutLabel(text, 'is_fraud', (rows) => rows.slice(0, 1500).reverse());
    const reversedOutput = path.join(scratch, 'sparkov-reversed.csv');
    assert.equal(coffer(['risk', 'score', '--dataset', 'sparkov', '--input', reversed.file, '--output', reversedOutput]).status, 0);
    assert.deepEqual(fs.readFileSync(reversedOutput, 'utf8').trimEnd().split('\n').slice(1), lines.slice(1).reverse());
  });

  test('ulb: every row scored, probabilities in [0, 1]', () => {
    const input = withoutLabel(fs.readFileSync(path.join(dataDir, 'ulb-train.csv'), 'utf8'), 'Class');
    const output = path.join(scratch, 'ulb-out.csv');
    const result = coffer(['risk', 'score', '--dataset', 'ulb', '--input', input.file, '--output', output]);
    assert.equal(result.status, 0, result.stderr);
    const lines = fs.readFileSync(output, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, input.table.rows.length + 1);
    assert.ok(lines.slice(1).every((line) => Number(line) >= 0 && Number(line) <= 1 && line.trim() !== ''));
  });

  test('a garbled value or a missing column: exit 1 naming the row and column, and no output file', () => {
    const text = fs.readFileSync(path.join(dataDir, 'sparkov-train.csv'), 'utf8');
    const garbled = withoutLabel(text, 'is_fraud', (rows) => rows.slice(0, 10).map((fields, i) => (i === 6 ? fields.map((field, j) => (j === 5 ? 'twelve' : field)) : fields)));
    const output = path.join(scratch, 'never.csv');
    const bad = coffer(['risk', 'score', '--dataset', 'sparkov', '--input', garbled.file, '--output', output]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /row 7, column amt: "twelve" is not a finite number/);
    assert.equal(fs.existsSync(output), false);
    const ulbAsSparkov = withoutLabel(fs.readFileSync(path.join(dataDir, 'ulb-train.csv'), 'utf8'), 'Class', (rows) => rows.slice(0, 5));
    const wrong = coffer(['risk', 'score', '--dataset', 'sparkov', '--input', ulbAsSparkov.file, '--output', output]);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /the header has no column "trans_date_trans_time"/);
    assert.equal(coffer(['risk', 'score', '--dataset', 'visa', '--input', garbled.file, '--output', output]).status, 2);
    const missing = path.join(scratch, 'no-such-input.csv');
    const absent = coffer(['risk', 'score', '--dataset', 'sparkov', '--input', missing, '--output', output]);
    assert.deepEqual([absent.status, absent.stderr.trim()], [1, `coffer: ${missing}: cannot read it (no such file)`]);
    assert.equal(fs.existsSync(output), false);
  });
});
