import type { RiskRuleSetRow } from '../store/database.ts';
import { compiledDefaultRules, defaultRuleSetId, defaultRules, type DecisionPolicy } from './engine.ts';
import type { SparkovEncoding } from './model/sparkov-features.ts';
import type { RiskScorer } from './model/scorer.ts';
import { compileRuleSet } from './rules/index.ts';
import type { UsdRates } from './usd-rates.ts';

/**
 * Failures a test can make the risk engine meet (`COFFER_RISK_FAULT`, honoured for test-mode payments only):
 * the counters' query fails or takes too long, or the model throws.
 */
export type RiskFault = 'velocity_fail' | 'velocity_slow' | 'model_fail';
export const riskFaults: readonly RiskFault[] = ['velocity_fail', 'velocity_slow', 'model_fail'];

export interface RiskEngineOptions {
  /** The live model (the Sparkov features); null runs rules only, every decision marked degraded. */
  scorer: RiskScorer | null;
  /** How long the counters may take before the decision goes on without them. */
  velocityBudgetMs: number;
  /** How long the model may take (microseconds) before the decision goes on without it. */
  modelBudgetUs: number;
  usdRates: UsdRates;
  fault: RiskFault | null;
}

export interface Policy extends DecisionPolicy {
  /** The merchant's rule set, or the defaults' id (`defaultRuleSetId`). */
  ruleSetId: string;
}

const failingScorer: Pick<RiskScorer, 'assess'> = {
  assess: () => {
    throw new Error('the risk model failed (COFFER_RISK_FAULT=model_fail)');
  },
};

/** The risk engine's configuration and its caches: compiled rule sets by id (a version never changes). */
export class RiskEngine {
  readonly options: RiskEngineOptions;
  private readonly compiled = new Map<string, Policy>();
  private readonly defaults: Policy;

  constructor(options: RiskEngineOptions) {
    this.options = options;
    // Compiled before the first payment: a cold first scoring can take milliseconds, over the model's budget.
    const scorer = options.scorer;
    if (scorer !== null) {
      const width = scorer.artifact.features.length;
      for (let i = 0; i < 200; i += 1) scorer.assess(Array.from({ length: width }, (_, j) => (i * (j + 1)) % 97), width);
    }
    this.defaults = {
      ruleSetId: defaultRuleSetId, ruleSet: compiledDefaultRules(), ruleTexts: new Map(defaultRules.map((rule) => [rule.id, rule.text])),
      scorer: options.scorer,
    };
  }

  get modelVersion(): string | null {
    return this.options.scorer?.artifact.modelVersion ?? null;
  }

  get encoding(): SparkovEncoding | null {
    const artifact = this.options.scorer?.artifact;
    return artifact?.dataset === 'sparkov' ? (artifact.encoding as SparkovEncoding) : null;
  }

  /** The policy of a stored rule set (null: the defaults); `testMode` lets a configured fault reach the model. */
  policyFor(row: Pick<RiskRuleSetRow, 'id' | 'rules'> | null, testMode: boolean): Policy {
    let policy = this.defaults;
    if (row !== null && row.id !== defaultRuleSetId) {
      const cached = this.compiled.get(row.id);
      if (cached !== undefined) {
        policy = cached;
      } else {
        const compiled = compileRuleSet(row.rules);
        // A stored set was valid when accepted; one that no longer compiles (a catalogue change) decides by the defaults.
        if (compiled.ok) {
          policy = { ruleSetId: row.id, ruleSet: compiled.ruleSet, ruleTexts: new Map(row.rules.map((rule) => [rule.id, rule.text])), scorer: this.options.scorer };
          if (this.compiled.size >= 1_000) this.compiled.clear();
          this.compiled.set(row.id, policy);
        }
      }
    }
    return testMode && this.options.fault === 'model_fail' ? { ...policy, scorer: failingScorer } : policy;
  }
}
