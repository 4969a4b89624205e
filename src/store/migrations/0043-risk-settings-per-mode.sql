-- A merchant's risk settings (the time zone its days are counted in, its category code, the amount above which
-- hosted checkout asks the shopper to step up) belong to one mode, as its limits and rule sets do: a test key
-- changes test mode's, never live mode's. A merchant without a row for a mode has the defaults (UTC, no category,
-- no step-up by amount). Both modes start with what the merchant had.
CREATE TABLE merchant_risk_settings (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  time_zone text NOT NULL DEFAULT 'UTC',
  category text CHECK (category ~ '^[0-9]{4}$'),
  step_up_above_usd numeric(14, 2) CHECK (step_up_above_usd >= 0),
  PRIMARY KEY (merchant_id, livemode)
);

INSERT INTO merchant_risk_settings (merchant_id, livemode, time_zone, category, step_up_above_usd)
SELECT m.id, modes.livemode, m.time_zone, m.category, m.step_up_above_usd
FROM merchants m CROSS JOIN (VALUES (false), (true)) AS modes (livemode)
WHERE m.time_zone <> 'UTC' OR m.category IS NOT NULL OR m.step_up_above_usd IS NOT NULL;

ALTER TABLE merchants DROP COLUMN time_zone, DROP COLUMN category, DROP COLUMN step_up_above_usd;

ALTER TABLE merchant_risk_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE merchant_risk_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON merchant_risk_settings
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
