-- Velocity counters read in time bounded by the second, not by the hour: every entry is added by a trigger to its
-- second's, minute's and hour's bucket. A window (at - length, at] is read as its whole hours, the whole minutes
-- and whole seconds at both edges, and only the entries of its two partial seconds: a key paying a hundred times
-- a second costs a few hundred bucket rows per read, where the hourly buckets alone left up to an hour of entries
-- to add up. Counts stay exact to the millisecond at both edges of every window.
CREATE TABLE velocity_buckets (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  dimension text NOT NULL,
  key text NOT NULL,
  span text NOT NULL CHECK (span IN ('second', 'minute', 'hour')),
  bucket_start timestamptz NOT NULL,
  outcome text NOT NULL,
  currency text NOT NULL,
  count bigint NOT NULL,
  amount bigint NOT NULL,
  last_at timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, livemode, dimension, key, span, bucket_start, outcome, currency)
);
-- For the reaper, which removes buckets older than the longest window and a day.
CREATE INDEX velocity_buckets_age ON velocity_buckets (bucket_start);

CREATE FUNCTION coffer_velocity_bucket_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO velocity_buckets AS b (merchant_id, livemode, dimension, key, span, bucket_start, outcome, currency, count, amount, last_at)
  SELECT NEW.merchant_id, NEW.livemode, NEW.dimension, NEW.key, spans.span, date_trunc(spans.span, NEW.occurred_at, 'UTC'), NEW.outcome, NEW.currency, 1, NEW.amount, NEW.occurred_at
  FROM (VALUES ('second'), ('minute'), ('hour')) AS spans (span)
  ON CONFLICT (merchant_id, livemode, dimension, key, span, bucket_start, outcome, currency)
  DO UPDATE SET count = b.count + 1, amount = b.amount + EXCLUDED.amount, last_at = greatest(b.last_at, EXCLUDED.last_at);
  RETURN NULL;
END;
$$;

INSERT INTO velocity_buckets (merchant_id, livemode, dimension, key, span, bucket_start, outcome, currency, count, amount, last_at)
SELECT merchant_id, livemode, dimension, key, spans.span, date_trunc(spans.span, occurred_at, 'UTC'), outcome, currency, count(*), sum(amount), max(occurred_at)
FROM velocity_entries CROSS JOIN (VALUES ('second'), ('minute'), ('hour')) AS spans (span)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

DROP TRIGGER velocity_entries_hour ON velocity_entries;
DROP FUNCTION coffer_velocity_hour_add();
DROP TABLE velocity_hours;
CREATE TRIGGER velocity_entries_bucket AFTER INSERT ON velocity_entries FOR EACH ROW EXECUTE FUNCTION coffer_velocity_bucket_add();

ALTER TABLE velocity_buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE velocity_buckets FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON velocity_buckets
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
