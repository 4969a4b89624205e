-- The operator's staff: users with a role, argon2id passwords and mandatory TOTP; one-time enrollment links;
-- single-use recovery codes; server-side sessions; four-eyes approvals of sensitive actions.
CREATE TABLE staff_users (
  id text PRIMARY KEY,
  -- Stored lowercased: one account per address, whatever the case it is typed in.
  email text NOT NULL UNIQUE CHECK (email = lower(email)),
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'risk_analyst', 'support_agent', 'finance', 'auditor')),
  status text NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
  password_hash text,
  password_changed_at timestamptz,
  -- The TOTP secret, sealed (platform/secret-box.ts); the last accepted time step, so a code is accepted once.
  totp_secret_ciphertext bytea,
  totp_last_step bigint,
  failed_logins integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  last_login_at timestamptz,
  CHECK (status = 'invited' OR (password_hash IS NOT NULL AND totp_secret_ciphertext IS NOT NULL) OR status = 'disabled')
);

-- Earlier password hashes: a new password may not be one of the last four.
CREATE TABLE staff_password_history (
  user_id text NOT NULL REFERENCES staff_users (id),
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX staff_password_history_user ON staff_password_history (user_id, created_at DESC);

CREATE TABLE staff_enrollments (
  -- SHA-256 of the token in the enrollment link; the token itself is shown once.
  token_hash bytea PRIMARY KEY,
  user_id text NOT NULL REFERENCES staff_users (id),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  -- The TOTP secret offered when the link was opened, sealed, until enrollment completes.
  pending_totp_ciphertext bytea
);
CREATE INDEX staff_enrollments_user ON staff_enrollments (user_id);

CREATE TABLE staff_recovery_codes (
  user_id text NOT NULL REFERENCES staff_users (id),
  code_hash bytea NOT NULL,
  created_at timestamptz NOT NULL,
  used_at timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE staff_sessions (
  -- SHA-256 of the cookie's token; the token is never stored.
  id bytea PRIMARY KEY,
  user_id text NOT NULL REFERENCES staff_users (id),
  -- 'mfa_pending': the password was right, the second factor is still due; 'active': both factors given.
  stage text NOT NULL CHECK (stage IN ('mfa_pending', 'active')),
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  authenticated_at timestamptz,
  revoked_at timestamptz,
  address text,
  user_agent text
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

CREATE TABLE staff_approvals (
  id text PRIMARY KEY,
  action text NOT NULL CHECK (action IN ('refund.create', 'api_key.create', 'staff.invite', 'staff.role_change')),
  params jsonb NOT NULL,
  summary text NOT NULL,
  requested_by text NOT NULL REFERENCES staff_users (id),
  requested_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'executed', 'failed')),
  decided_by text REFERENCES staff_users (id),
  decided_at timestamptz,
  result jsonb,
  CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX staff_approvals_status ON staff_approvals (status, requested_at);
