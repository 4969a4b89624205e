// The fraud model's scoring speed in process: one payment at a time, as the payment flow calls it.
//
//   node bin/run-ts.js bench/risk-model.ts            # both shipped models, 20,000 scorings each
//   node bin/run-ts.js bench/risk-model.ts --count 100000
//
// Times three calls per payment: the probability alone, the full assessment (probability, score, level, action
// and the top three reasons), and, for Sparkov, the feature vector from a payment and its card history plus the
// assessment. Inputs are built once, cycled, and read through a checksum so that no call is optimized away.
import { parseArgs } from 'node:util';
import { datasets, type DatasetName } from '../src/risk/model/datasets.ts';
import { RiskScorer, shippedModelPath } from '../src/risk/model/scorer.ts';
import { writeSparkovFeatures, type EarlierPayment, type SparkovEncoding, type SparkovPayment } from '../src/risk/model/sparkov-features.ts';
import { seededRandom } from '../src/risk/model/seeded-random.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '20000' } } });
const count = Number(values.count);

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function measure(label: string, inputs: number, call: (i: number) => number): void {
  let checksum = 0;
  for (let i = 0; i < Math.min(count, 2000); i += 1) checksum += call(i % inputs);
  const times = new Float64Array(count);
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    checksum += call(i % inputs);
    times[i] = Number(process.hrtime.bigint() - started) / 1e6;
  }
  times.sort();
  const ms = (value: number) => `${(value * 1000).toFixed(1)} µs`;
  console.log(`${label.padEnd(44)} p50 ${ms(quantile(times, 0.5))}  p99 ${ms(quantile(times, 0.99))}  max ${ms(quantile(times, 1))}  (checksum ${checksum.toFixed(3)})`);
}

function randomVectors(featureCount: number, random: () => number): Float64Array[] {
  return Array.from({ length: 1000 }, () => Float64Array.from({ length: featureCount }, () => (random() - 0.5) * 6));
}

for (const dataset of ['ulb', 'sparkov'] as DatasetName[]) {
  const scorer = RiskScorer.fromFile(shippedModelPath(dataset));
  const random = seededRandom(7);
  const vectors = randomVectors(datasets[dataset].features.length, random);
  console.log(`${dataset}: ${scorer.artifact.modelVersion}, ${scorer.ensemble.treeCount} trees, ${count} scorings per line`);
  measure('  probability', vectors.length, (i) => scorer.probability(vectors[i] as Float64Array));
  measure('  assess (probability, score, action, reasons)', vectors.length, (i) => scorer.assess(vectors[i] as Float64Array).probability);
  if (dataset === 'sparkov') {
    const encoding = scorer.artifact.encoding as SparkovEncoding;
    const categories = Object.keys(encoding.categoryRisk);
    const now = Date.UTC(2020, 9, 20, 14, 0, 0);
    const payments = Array.from({ length: 1000 }, (): { payment: SparkovPayment; history: EarlierPayment[] } => ({
      payment: {
        timeMs: now, amount: Math.round(random() * 50_000) / 100, category: categories[Math.floor(random() * categories.length)] as string,
        cardholderLatitude: 40 + random(), cardholderLongitude: -80 + random(), merchantLatitude: 40 + random(), merchantLongitude: -80 + random(),
        birthDateMs: Date.UTC(1950 + Math.floor(random() * 50), 0, 1),
      },
      history: Array.from({ length: Math.floor(random() * 30) }, (_, k) => ({ timeMs: now - (30 - k) * 3_600_000 * 12, amount: random() * 200 })),
    }));
    const x = new Float64Array(datasets.sparkov.features.length);
    measure('  features from payment and history + assess', payments.length, (i) => {
      const { payment, history } = payments[i] as { payment: SparkovPayment; history: EarlierPayment[] };
      writeSparkovFeatures(payment, history, encoding, x);
      return scorer.assess(x).probability;
    });
  }
}
