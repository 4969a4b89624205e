/**
 * The risk decision: what Coffer does with a payment before any provider sees it. Pure: given the same inputs,
 * rule set and model, it decides the same, which is what makes stored decisions replayable. Gathering the inputs
 * (database, clock, client address) is `flows/risk-decision.ts`.
 *
 * 1. The model scores the payment's feature vector: a calibrated probability, a 0-100 score and a level. Test
 *    cards with a documented risk level (Stripe's 4000000000009235 elevated, 4000000000004954 and
 *    4100000000000019 highest) set the score and level in test mode instead, as Radar's test cards do.
 * 2. The rules decide with the payment's attributes, the score and the level among them (`rules/rule-set.ts`:
 *    step-up, then allow, block, review; first match within an action). No rule firing means allow.
 * 3. A model that fails, or takes longer than its budget, is left out and the decision is marked degraded: the
 *    rules decide alone (a rule on `:risk_score:` then does not fire). Velocity counters that could not be read in
 *    time are missing attributes the same way. The engine never makes a payment fail.
 */
import { compileRuleSet, decide, type RuleInput, type RuleSet } from './rules/index.ts';
import type { RiskScorer } from './model/scorer.ts';
import { riskLevel as levelOfScore, type RiskLevel } from './model/cost-model.ts';

export type RiskAction = 'allow' | 'request_step_up' | 'review' | 'block';
export type DecisionLevel = RiskLevel | 'not_assessed';

/** Why a decision was made without part of its inputs. */
export type DegradedReason = 'velocity_failed' | 'velocity_over_budget' | 'model_failed' | 'model_over_budget' | 'model_unavailable' | 'inputs_failed' | 'no_usd_rate';

const modelDegradations: readonly DegradedReason[] = ['model_failed', 'model_over_budget', 'model_unavailable'];

/** What a decision is made from, exactly as stored (JSON) with the decision. */
export interface DecisionInputs {
  /** The payment's rule attributes, without `risk_score` and `risk_level` (the model adds those). */
  attributes: RuleInput;
  /** The model's feature vector, or null when it could not be built (no dollar amount). */
  features: number[] | null;
  /** Features given stand-in values; never reasons. */
  imputed: string[];
  /** Test mode only: the level a test card stands for. */
  forcedLevel: 'elevated' | 'highest' | null;
  /** Parts missing before the decision (counters); the decision adds the model's. */
  degradedReasons: DegradedReason[];
}

export interface ModelReason {
  feature: string;
  value: number;
  contribution: number;
}

export interface RiskDecision {
  action: RiskAction;
  riskScore: number | null;
  riskLevel: DecisionLevel;
  /** The rule that decided, if one did. */
  rule: string | null;
  matched: string[];
  shadowMatches: string[];
  probability: number | null;
  modelAction: 'allow' | 'review' | 'block' | null;
  /** The measured features that pushed the score up most. */
  modelReasons: ModelReason[];
  /** Short sentences for people: the rule, then the model's reasons. */
  reasons: string[];
  degraded: boolean;
  degradedReasons: DegradedReason[];
}

export interface DecisionPolicy {
  ruleSet: RuleSet;
  /** The rule set's texts by id, for the reasons. */
  ruleTexts: ReadonlyMap<string, string>;
  scorer: Pick<RiskScorer, 'assess'> | null;
}

/** Scores of the test cards' forced levels: within the level's band of the score. */
const forcedScores = { elevated: 70, highest: 90 } as const;

/**
 * Coffer's rules for a merchant who has written none, as Radar's default: block what the model puts at the
 * highest level (its block threshold, chosen by the cost model). Review is opt-in, with a rule.
 */
/** The defaults' own version, stored with the decisions they made (a later change of defaults gets a new id). */
export const defaultRuleSetId = 'coffer_defaults_1';

export const defaultRules = [{ id: 'coffer_default_block_highest', text: "block if :risk_level: = 'highest'", mode: 'active' as const }];

export function compiledDefaultRules(): DecisionPolicy['ruleSet'] {
  const compiled = compileRuleSet(defaultRules);
  if (!compiled.ok) throw new Error('the default rules compile');
  return compiled.ruleSet;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export interface DecideOptions {
  /** The model's time budget in microseconds; replays pass Infinity (the stored inputs say if it was used). */
  modelBudgetUs: number;
  /** Measures time; replaceable so that over-budget can be shown without a slow machine. */
  nowUs?: () => number;
}

const hrtimeUs = (): number => Number(process.hrtime.bigint() / 1000n);

export function decideRisk(policy: DecisionPolicy, inputs: DecisionInputs, options: DecideOptions): RiskDecision {
  const degradedReasons = [...inputs.degradedReasons];
  let probability: number | null = null;
  let score: number | null = null;
  let level: DecisionLevel = 'not_assessed';
  let modelAction: RiskDecision['modelAction'] = null;
  let modelReasons: ModelReason[] = [];
  const modelExcluded = degradedReasons.some((reason) => modelDegradations.includes(reason));
  if (!modelExcluded && inputs.features !== null) {
    if (policy.scorer === null) {
      degradedReasons.push('model_unavailable');
    } else {
      const clock = options.nowUs ?? hrtimeUs;
      const started = clock();
      try {
        const assessment = policy.scorer.assess(inputs.features, inputs.features.length);
        if (clock() - started > options.modelBudgetUs) {
          degradedReasons.push('model_over_budget');
        } else {
          // Ten decimals: enough to compare, and no digit run long enough to look like a card number.
          probability = round(assessment.probability, 10);
          score = assessment.riskScore;
          level = assessment.riskLevel;
          modelAction = assessment.action;
          modelReasons = assessment.reasons.filter((reason) => reason.contribution > 0 && !inputs.imputed.includes(reason.feature)).slice(0, 3)
            .map((reason) => ({ feature: reason.feature, value: round(reason.value, 4), contribution: round(reason.contribution, 4) }));
        }
      } catch {
        degradedReasons.push('model_failed');
      }
    }
  }
  if (inputs.forcedLevel !== null) {
    score = forcedScores[inputs.forcedLevel];
    level = levelOfScore(score);
  }
  const attributes: RuleInput = { ...inputs.attributes, risk_score: score, risk_level: level === 'not_assessed' ? null : level };
  const ruled = decide(policy.ruleSet, attributes);
  const reasons: string[] = [];
  if (ruled.rule !== null) reasons.push(`rule ${ruled.rule}: ${policy.ruleTexts.get(ruled.rule) ?? ''}`.trim());
  if (inputs.forcedLevel !== null) reasons.push(`test card with risk level ${inputs.forcedLevel}`);
  for (const reason of modelReasons) reasons.push(`${reason.feature} = ${reason.value} raised the risk (+${reason.contribution} log-odds)`);
  return {
    action: ruled.action ?? 'allow',
    riskScore: score,
    riskLevel: level,
    rule: ruled.rule,
    matched: [...ruled.matched],
    shadowMatches: [...ruled.shadowMatches],
    probability,
    modelAction,
    modelReasons,
    reasons,
    degraded: degradedReasons.length > 0,
    degradedReasons,
  };
}

/**
 * The inputs as stored with a decision: every reason it was degraded is kept, so that a replay leaves out what
 * the decision left out (a model over its budget is not run again), whatever the replaying machine's speed.
 */
export function storedInputs(inputs: DecisionInputs, decision: RiskDecision): DecisionInputs {
  return { ...inputs, degradedReasons: decision.degradedReasons };
}

/** Decides again from stored inputs; for the same rule set and model, the result equals the stored one. */
export function replayDecision(policy: DecisionPolicy, stored: DecisionInputs): RiskDecision {
  return decideRisk(policy, stored, { modelBudgetUs: Number.POSITIVE_INFINITY });
}
