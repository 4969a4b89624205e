/**
 * The model file (`models/<dataset>.json`): everything needed to score, explain and decide, and everything needed
 * to know what the model is (how it was trained, on what, and how well it did on the later slice). The schema is
 * checked when the file is read: a file is `unknown` until it passes.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const artifactFormat = 'coffer-risk-model/1';

const NumberArray = Type.Array(Type.Number());
const Strict = { additionalProperties: false } as const;

export const TreeSchema = Type.Object(
  { feature: Type.Array(Type.Integer()), threshold: NumberArray, left: Type.Array(Type.Integer()), right: Type.Array(Type.Integer()), value: NumberArray, cover: NumberArray },
  Strict,
);

const MetricsSchema = Type.Object(
  {
    rows: Type.Integer(),
    frauds: Type.Integer(),
    legitimateRows: Type.Integer(),
    averagePrecision: Type.Number(),
    rocAuc: Type.Number(),
    recallAtFpr0005: Type.Number(),
    recallAtFpr001: Type.Number(),
    recallAtFpr005: Type.Number(),
    calibration: Type.Object({ predictedFrauds: Type.Number(), observedFrauds: Type.Number(), ratio: Type.Number() }, Strict),
  },
  Strict,
);

const OperatingPointSchema = Type.Object(
  {
    legitimateBlockedRate: Type.Number(),
    legitimateReviewedRate: Type.Number(),
    fraudBlockedRate: Type.Number(),
    fraudReviewedRate: Type.Number(),
    fraudStoppedRate: Type.Number(),
    costPerPayment: Type.Number(),
    costPerPaymentAllowAll: Type.Number(),
  },
  Strict,
);

const TimeRangeSchema = Type.Object({ first: Type.String(), last: Type.String() }, Strict);

const SliceSchema = Type.Object({ rows: Type.Integer(), frauds: Type.Integer(), timeRange: TimeRangeSchema }, Strict);

export const ArtifactSchema = Type.Object(
  {
    format: Type.Literal(artifactFormat),
    modelVersion: Type.String(),
    dataset: Type.Union([Type.Literal('ulb'), Type.Literal('sparkov')]),
    learner: Type.Literal('gradient-boosted trees, logistic loss (src/risk/model/gradient-boosting.ts)'),
    labelColumn: Type.String(),
    inputColumns: Type.Array(Type.String()),
    features: Type.Array(Type.Object({ name: Type.String(), derivation: Type.String() }, Strict)),
    encoding: Type.Union([
      Type.Null(),
      Type.Object({ categoryRisk: Type.Record(Type.String(), Type.Number()), unknownCategoryRisk: Type.Number() }, Strict),
    ]),
    hyperparameters: Type.Object(
      {
        trees: Type.Integer(), learningRate: Type.Number(), maxDepth: Type.Integer(), minChildWeight: Type.Number(), l2: Type.Number(),
        minSplitGain: Type.Number(), rowSubsample: Type.Number(), columnSubsample: Type.Number(), bins: Type.Integer(), seed: Type.Integer(),
        trainingLegitimateWeight: Type.Number(), calibrationFolds: Type.Integer(),
      },
      Strict,
    ),
    model: Type.Object({ baseMargin: Type.Number(), trees: Type.Array(TreeSchema) }, Strict),
    calibration: Type.Object(
      {
        method: Type.String(),
        trainingLegitimateWeight: Type.Number(),
        naturalLegitimateWeight: Type.Number(),
        priorShift: Type.Number(),
        slope: Type.Number(),
        intercept: Type.Number(),
      },
      Strict,
    ),
    costModel: Type.Object(
      {
        currency: Type.String(), chargebackFee: Type.Number(), grossMarginRate: Type.Number(), declineFriction: Type.Number(),
        reviewCost: Type.Number(), reviewFraudCatchRate: Type.Number(), blockRateMax: Type.Number(), reviewRateMax: Type.Number(),
      },
      Strict,
    ),
    thresholds: Type.Object(
      {
        review: Type.Number(),
        block: Type.Number(),
        riskScore: Type.Object({ elevated: Type.Integer(), highest: Type.Integer() }, Strict),
        /** How the thresholds did on the out-of-fold predictions they were chosen on. */
        outOfFold: OperatingPointSchema,
      },
      Strict,
    ),
    training: Type.Object(
      {
        inputSha256: Type.String(),
        rows: Type.Integer(),
        frauds: Type.Integer(),
        legitimateRows: Type.Integer(),
        timeRange: TimeRangeSchema,
        outOfFoldMetrics: MetricsSchema,
      },
      Strict,
    ),
    validation: Type.Object(
      {
        protocol: Type.String(),
        earlier: SliceSchema,
        later: SliceSchema,
        metrics: MetricsSchema,
        operatingPoint: OperatingPointSchema,
        thresholds: Type.Object({ review: Type.Number(), block: Type.Number() }, Strict),
      },
      Strict,
    ),
  },
  Strict,
);

export type ModelArtifact = Static<typeof ArtifactSchema>;
export type ArtifactMetrics = Static<typeof MetricsSchema>;
export type ArtifactOperatingPoint = Static<typeof OperatingPointSchema>;

/** Checks a parsed JSON value against the schema; the error names the first place that does not fit. */
export function parseArtifact(value: unknown): ModelArtifact {
  if (Value.Check(ArtifactSchema, value)) return value;
  const first = Value.Errors(ArtifactSchema, value).First();
  throw new Error(`not a ${artifactFormat} file: ${first === undefined ? 'invalid' : `${first.path || '/'} ${first.message}`}`);
}
