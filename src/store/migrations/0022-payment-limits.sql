-- Payment limits a merchant sets: per payment (minimum, maximum), cumulative amount per day, count per hour and per
-- day, by merchant, customer, card, device or client address. Counters are taken inside the statement that starts
-- the attempt (so concurrent payments serialize on the counter row and exactly as many pass as fit), and given back
-- when the attempt fails; a refused payment aborts that statement and changes nothing.
CREATE TABLE payment_limits (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  subject text NOT NULL CHECK (subject IN ('merchant', 'customer', 'card', 'device', 'client_address')),
  kind text NOT NULL CHECK (kind IN ('amount_min', 'amount_max', 'amount_per_day', 'count_per_hour', 'count_per_day')),
  currency text,
  value bigint NOT NULL CHECK (value >= 0),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  deleted_at timestamptz,
  CHECK ((kind IN ('count_per_hour', 'count_per_day')) = (currency IS NULL))
);
CREATE INDEX payment_limits_merchant ON payment_limits (merchant_id, livemode) WHERE deleted_at IS NULL;

CREATE TABLE payment_limit_counters (
  limit_id text NOT NULL REFERENCES payment_limits (id),
  subject_key text NOT NULL,
  -- The window in the merchant's time zone: `2026-11-26` for a day, `2026-11-26T14` for an hour.
  window_key text NOT NULL,
  merchant_id text NOT NULL REFERENCES merchants (id),
  amount bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
  count integer NOT NULL DEFAULT 0 CHECK (count >= 0),
  PRIMARY KEY (limit_id, subject_key, window_key)
);

-- What each attempt took, so that a failed attempt gives back exactly that, once. No foreign key to charges: the
-- charge is inserted by the same statement that takes the counters, which cannot see its own other inserts.
CREATE TABLE payment_limit_reservations (
  charge_id text NOT NULL,
  limit_id text NOT NULL REFERENCES payment_limits (id),
  subject_key text NOT NULL,
  window_key text NOT NULL,
  merchant_id text NOT NULL REFERENCES merchants (id),
  amount bigint NOT NULL,
  released boolean NOT NULL DEFAULT false,
  PRIMARY KEY (charge_id, limit_id)
);

-- Takes one payment of p_amount from a counter, refusing (SQLSTATE P0001, message `coffer_limit_exceeded <id>`) if
-- the window's total or count would pass the limit; the refusal aborts the caller's whole statement.
CREATE FUNCTION coffer_limit_take(p_limit text, p_subject text, p_window text, p_merchant text, p_charge text,
                                  p_amount bigint, p_max_amount bigint, p_max_count integer) RETURNS boolean
  LANGUAGE plpgsql AS $$
DECLARE
  total bigint;
  taken integer;
BEGIN
  INSERT INTO payment_limit_counters AS c (limit_id, subject_key, window_key, merchant_id, amount, count)
    VALUES (p_limit, p_subject, p_window, p_merchant, p_amount, 1)
    ON CONFLICT (limit_id, subject_key, window_key) DO UPDATE SET amount = c.amount + excluded.amount, count = c.count + 1
    RETURNING amount, count INTO total, taken;
  IF (p_max_amount IS NOT NULL AND total > p_max_amount) OR (p_max_count IS NOT NULL AND taken > p_max_count) THEN
    RAISE EXCEPTION 'coffer_limit_exceeded %', p_limit;
  END IF;
  INSERT INTO payment_limit_reservations (charge_id, limit_id, subject_key, window_key, merchant_id, amount)
    VALUES (p_charge, p_limit, p_subject, p_window, p_merchant, p_amount);
  RETURN true;
END
$$;

-- Gives back what a failed attempt took (once).
CREATE FUNCTION coffer_limit_release(p_charge text) RETURNS integer
  LANGUAGE plpgsql AS $$
DECLARE
  given_back integer;
BEGIN
  WITH given AS (
    UPDATE payment_limit_reservations SET released = true WHERE charge_id = p_charge AND NOT released
    RETURNING limit_id, subject_key, window_key, amount
  )
  UPDATE payment_limit_counters c SET amount = c.amount - g.amount, count = c.count - 1
    FROM given g WHERE c.limit_id = g.limit_id AND c.subject_key = g.subject_key AND c.window_key = g.window_key;
  GET DIAGNOSTICS given_back = ROW_COUNT;
  RETURN given_back;
END
$$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['payment_limits', 'payment_limit_counters', 'payment_limit_reservations'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY merchant_scope ON %I USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope()) '
      'WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())', t);
  END LOOP;
END
$$;
