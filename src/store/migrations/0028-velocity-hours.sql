-- Velocity counters read in constant time for busy keys (a popular BIN, a shared address): every entry is also
-- added to its hour's bucket by a trigger, so a window is its whole hours from the buckets plus its two partial
-- hours from the entries themselves. Counts stay exact to the millisecond at both edges of every window.
CREATE TABLE velocity_hours (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  dimension text NOT NULL,
  key text NOT NULL,
  hour timestamptz NOT NULL,
  outcome text NOT NULL,
  currency text NOT NULL,
  count bigint NOT NULL,
  amount bigint NOT NULL,
  last_at timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, livemode, dimension, key, hour, outcome, currency)
);

CREATE FUNCTION coffer_velocity_hour_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO velocity_hours AS h (merchant_id, livemode, dimension, key, hour, outcome, currency, count, amount, last_at)
  VALUES (NEW.merchant_id, NEW.livemode, NEW.dimension, NEW.key, date_trunc('hour', NEW.occurred_at, 'UTC'), NEW.outcome, NEW.currency, 1, NEW.amount, NEW.occurred_at)
  ON CONFLICT (merchant_id, livemode, dimension, key, hour, outcome, currency)
  DO UPDATE SET count = h.count + 1, amount = h.amount + EXCLUDED.amount, last_at = greatest(h.last_at, EXCLUDED.last_at);
  RETURN NULL;
END;
$$;

CREATE TRIGGER velocity_entries_hour AFTER INSERT ON velocity_entries FOR EACH ROW EXECUTE FUNCTION coffer_velocity_hour_add();

INSERT INTO velocity_hours (merchant_id, livemode, dimension, key, hour, outcome, currency, count, amount, last_at)
SELECT merchant_id, livemode, dimension, key, date_trunc('hour', occurred_at, 'UTC'), outcome, currency, count(*), sum(amount), max(occurred_at)
FROM velocity_entries GROUP BY 1, 2, 3, 4, 5, 6, 7;

ALTER TABLE velocity_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE velocity_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON velocity_hours
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
