-- A merchant's risk rules, as versioned sets: each change makes a new version (the old ones stay, so that every
-- decision can name the version it used). Staff changes need a second person's approval.
CREATE TABLE risk_rule_sets (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  version integer NOT NULL CHECK (version > 0),
  rules jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  -- The API key or staff member that made it.
  created_by text NOT NULL,
  UNIQUE (merchant_id, livemode, version)
);

ALTER TABLE risk_rule_sets ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk_rule_sets FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON risk_rule_sets
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

ALTER TABLE staff_approvals DROP CONSTRAINT staff_approvals_action_check;
ALTER TABLE staff_approvals ADD CONSTRAINT staff_approvals_action_check
  CHECK (action IN ('refund.create', 'api_key.create', 'staff.invite', 'staff.role_change', 'limit.change', 'rule_set.change'));
