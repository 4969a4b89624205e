// The risk engine's speed: the decision in process, and what deciding adds to a payment confirmation.
//
//   node bin/run-ts.js bench/risk-decision.ts                    # 50,000 decisions; 400 confirmations on PGlite
//   node bin/run-ts.js bench/risk-decision.ts --count 200000 --payments 1000
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_risk node bin/run-ts.js bench/risk-decision.ts
//
// 1. In process: `decideRisk` (the shipped Sparkov model, then a 24-rule set with velocity, country and score
//    rules) over varied payments, one at a time as the payment flow calls it. Goal: p99 under 1 ms.
// 2. End to end: a Coffer server in this process (embedded database, or DATABASE_URL), the same rules set for
//    its demo merchant, and sequential create-and-confirm requests over HTTP. Each stored decision records the
//    time deciding took inside its confirmation (gathering the merchant's rules and the velocity counters from the
//    database, the IP country, the model and the rules); that is set against the whole confirmation's latency.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startCoffer } from '../src/app/start-coffer.ts';
import { loadConfig } from '../src/platform/config.ts';
import { decideRisk, type DecisionInputs } from '../src/risk/engine.ts';
import { liveSparkovFeatures } from '../src/risk/live-features.ts';
import { RiskEngine } from '../src/risk/risk-engine.ts';
import { RiskScorer, shippedModelPath } from '../src/risk/model/scorer.ts';
import { seededRandom } from '../src/risk/model/seeded-random.ts';
import type { SparkovEncoding } from '../src/risk/model/sparkov-features.ts';
import { usdRates } from '../src/risk/usd-rates.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '50000' }, payments: { type: 'string', default: '400' } } });
const count = Number(values.count);
const payments = Number(values.payments);

const rules = [
  { id: 'block_big_foreign', text: 'block if :amount_usd: > 5000 and :card_country: != :ip_country:' },
  { id: 'block_highest', text: "block if :risk_level: = 'highest'" },
  { id: 'review_elevated', text: "review if :risk_level: = 'elevated' and :amount_usd: > 100" },
  { id: 'step_up_new_device', text: 'request_step_up if :device_payments_7d: = 0 and :amount_usd: > 300' },
  { id: 'allow_trusted', text: "allow if :email_domain: IN ('trusted.example', 'staff.example')" },
  { id: 'card_burst', text: 'block if :card_payments_1h: > 10' },
  { id: 'card_declines', text: 'review if :card_declined_payments_24h: >= 3' },
  { id: 'ip_burst', text: 'request_step_up if :ip_address_payments_1h: > 20' },
  { id: 'bin_blocks', text: 'review if :bin_blocked_payments_7d: > 5' },
  { id: 'email_spend', text: 'review if :email_amount_24h: > 500000' },
  { id: 'night_big', text: 'request_step_up if :hour_of_day: < 5 and :amount_usd: > 500' },
  { id: 'ship_mismatch', text: 'review if :shipping_country: != :billing_country: and :amount_usd: > 1000' },
  { id: 'prepaid_like', text: "review if :card_brand: = 'unionpay' and :ip_country: NOT IN ('CN', 'HK', 'MO')" },
  { id: 'customer_new', text: 'request_step_up if :customer_payments_7d: = 0 and :amount_usd: > 2000' },
  { id: 'score_mid', text: 'request_step_up if :risk_score: >= 60 and :risk_score: < 65' },
  { id: 'weekend_big', text: 'review if :day_of_week: >= 6 and :amount_usd: > 3000' },
  { id: 'device_cards', text: 'block if :device_blocked_payments_24h: >= 2' },
  { id: 'currency_odd', text: "review if :currency: NOT IN ('usd', 'eur', 'gbp', 'cny', 'jpy') and :amount_usd: > 1000" },
  { id: 'shadow_score', text: 'block if :risk_score: >= 50', mode: 'shadow' as const },
  { id: 'shadow_velocity', text: 'block if :card_payments_24h: > 5', mode: 'shadow' as const },
  { id: 'email_declines', text: 'block if :email_declined_payments_7d: > 8' },
  { id: 'ip_spend', text: 'review if :ip_address_amount_24h: > 2000000' },
  { id: 'missing_ip_country', text: 'request_step_up if is_missing(:ip_country:) and :amount_usd: > 4000' },
  { id: 'bin_spend', text: 'review if :bin_amount_7d: > 10000000' },
].map((rule) => ({ mode: 'active' as const, ...rule }));

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function summary(label: string, times: Float64Array, unit: string): void {
  const sorted = Float64Array.from(times).sort();
  console.log(`${label.padEnd(44)} p50 ${quantile(sorted, 0.5).toFixed(3)} ${unit}  p99 ${quantile(sorted, 0.99).toFixed(3)} ${unit}  max ${(sorted[sorted.length - 1] as number).toFixed(3)} ${unit}  (n = ${times.length})`);
}

function inProcess(): void {
  const scorer = RiskScorer.fromFile(shippedModelPath('sparkov'));
  const engine = new RiskEngine({ scorer, velocityBudgetMs: 200, modelBudgetUs: 1_000_000, usdRates: usdRates(), fault: null });
  const policy = engine.policyFor({ id: 'bench', rules }, false);
  const encoding = scorer.artifact.encoding as SparkovEncoding;
  const random = seededRandom(7);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const inputs: DecisionInputs[] = [];
  for (let i = 0; i < 5_000; i += 1) {
    const amountUsd = Math.round(random() ** 3 * 8_000 * 100) / 100;
    const velocity: Record<string, number> = {};
    for (const subject of ['card', 'customer', 'email', 'ip_address', 'device', 'bin']) {
      for (const period of ['1h', '24h', '7d']) {
        const scale = period === '1h' ? 1 : period === '24h' ? 4 : 12;
        velocity[`${subject}_payments_${period}`] = Math.floor(random() * scale * 3);
        velocity[`${subject}_declined_payments_${period}`] = Math.floor(random() * scale);
        velocity[`${subject}_blocked_payments_${period}`] = Math.floor(random() * scale * 0.3);
        velocity[`${subject}_amount_${period}`] = Math.floor(random() * scale * 200_000);
      }
    }
    const history = random() < 0.3 ? null : { count24h: velocity.card_payments_24h ?? 0, amountUsd24h: random() * 900, count7d: velocity.card_payments_7d ?? 0, amountUsd7d: random() * 3_000, lastAtMs: random() < 0.5 ? null : 1e12 - random() * 5e8 };
    const live = liveSparkovFeatures({ amountUsd, merchantCategory: pick(['5999', '5411', '4511', null]), localHour: random() * 24, localDayOfWeek: Math.floor(random() * 7), nowMs: 1e12, card: history }, encoding);
    inputs.push({
      attributes: {
        amount: Math.round(amountUsd * 100), amount_usd: amountUsd, currency: pick(['usd', 'eur', 'cny', 'xof']), livemode: true, merchant_id: 'acct_bench',
        email: 'someone@example.com', email_domain: pick(['example.com', 'trusted.example', 'mail.example']), card_bin: '424242', card_brand: pick(['visa', 'mastercard', 'unionpay']),
        card_country: pick(['US', 'CN', 'FR']), ip_address: '81.2.69.160', ...(random() < 0.9 ? { ip_country: pick(['US', 'CN', 'GB', 'FR']) } : {}),
        billing_country: pick(['US', 'CN']), shipping_country: pick(['US', 'CN', 'JP']), hour_of_day: Math.floor(random() * 24), day_of_week: 1 + Math.floor(random() * 7),
        ...velocity,
      },
      features: live.features, imputed: live.imputed, forcedLevel: null, degradedReasons: [],
    });
  }
  let checksum = 0;
  for (let i = 0; i < 5_000; i += 1) checksum += decideRisk(policy, inputs[i % inputs.length] as DecisionInputs, { modelBudgetUs: 1e9 }).matched.length;
  const times = new Float64Array(count);
  const actions: Record<string, number> = {};
  for (let i = 0; i < count; i += 1) {
    const started = process.hrtime.bigint();
    const decision = decideRisk(policy, inputs[i % inputs.length] as DecisionInputs, { modelBudgetUs: 1e9 });
    times[i] = Number(process.hrtime.bigint() - started) / 1e6;
    actions[decision.action] = (actions[decision.action] ?? 0) + 1;
    checksum += decision.riskScore ?? 0;
  }
  console.log(`In process: the model, then ${rules.length} rules (checksum ${checksum}); actions ${JSON.stringify(actions)}`);
  summary('  decideRisk', times, 'ms');
}

async function endToEnd(): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-bench-risk-'));
  const config = loadConfig({
    ...process.env, COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'warn', COFFER_JOBS: 'false', COFFER_TLS_DISABLED: 'true',
    COFFER_RATE_LIMIT_PER_KEY: '100000000', COFFER_RATE_LIMIT_PER_ADDRESS: '100000000',
  });
  const coffer = await startCoffer({ config, demoMerchant: true });
  try {
    const demo = coffer.demo;
    if (demo === undefined) throw new Error('the bench needs a fresh installation with the demo merchant');
    const base = `http://127.0.0.1:${coffer.port}`;
    const call = async (method: string, url: string, body: string, type = 'application/x-www-form-urlencoded') => {
      const response = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${demo.secretKey}`, 'content-type': type }, body });
      const text = await response.text();
      if (!response.ok && response.status !== 402) throw new Error(`${method} ${url}: ${response.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
    await call('POST', '/v1/risk/rule_sets', JSON.stringify({ rules }), 'application/json');
    const latencies = new Float64Array(payments);
    const random = seededRandom(11);
    for (let i = 0; i < payments; i += 1) {
      const amount = 500 + Math.floor(random() * 20_000);
      const started = process.hrtime.bigint();
      await call('POST', '/v1/payment_intents', `amount=${amount}&currency=usd&payment_method=pm_card_visa&confirm=true&receipt_email=buyer${i % 50}%40example.com&radar_options[session]=dev_${i % 80}`);
      latencies[i] = Number(process.hrtime.bigint() - started) / 1e6;
    }
    const rows = await coffer.services.db.selectFrom('risk_decisions').select(['elapsed_us', 'action', 'degraded']).where('merchant_id', '=', demo.merchantId).execute();
    const elapsed = Float64Array.from(rows, (row) => row.elapsed_us / 1000);
    const database = config.databaseUrl === undefined ? 'embedded PGlite' : 'PostgreSQL';
    console.log(`End to end on ${database}: ${payments} sequential create-and-confirm requests, ${rows.length} decisions (${rows.filter((row) => row.degraded).length} degraded)`);
    summary('  whole request (create + confirm)', latencies, 'ms');
    summary('  deciding inside the confirmation', elapsed, 'ms');
    const share = elapsed.reduce((sum, value) => sum + value, 0) / latencies.reduce((sum, value) => sum + value, 0);
    console.log(`  deciding is ${(share * 100).toFixed(1)} % of the request time on average`);
  } finally {
    await coffer.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
}

inProcess();
await endToEnd();
