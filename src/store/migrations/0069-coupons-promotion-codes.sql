-- Stripe's Coupons and Promotion Codes, and the discount a Checkout Session takes (decision 0062). A coupon is a
-- percentage or an amount off; its id may be the merchant's own (Stripe's `id` on create), so it is unique per
-- merchant and mode. What makes a coupon (its terms, currency, limits, products) never changes once it exists, as at
-- Stripe; a deleted coupon keeps its row (`deleted_at`), since sessions and codes name it. A promotion code is a
-- word a shopper types that gives a coupon, with limits of its own; no two active codes of a merchant and mode are
-- the same word for the same customer (or for anyone), case aside.
CREATE TABLE coupons (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  id text NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  name text,
  -- A percentage in hundredths (12.5% is 1250), or an amount in the currency's minor units: exactly one.
  percent_off_hundredths integer CHECK (percent_off_hundredths > 0 AND percent_off_hundredths <= 10000),
  amount_off bigint CHECK (amount_off > 0),
  currency text CHECK (currency ~ '^[a-z]{3}$'),
  duration text NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
  duration_in_months integer CHECK (duration_in_months > 0),
  max_redemptions integer CHECK (max_redemptions > 0),
  redeem_by timestamptz,
  -- The catalogue products the coupon takes off; null: every item.
  applies_to_products jsonb,
  metadata jsonb NOT NULL DEFAULT '{}',
  times_redeemed integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
  deleted_at timestamptz,
  PRIMARY KEY (merchant_id, livemode, id),
  CHECK ((percent_off_hundredths IS NULL) <> (amount_off IS NULL)),
  CHECK ((amount_off IS NULL) = (currency IS NULL)),
  CHECK ((duration = 'repeating') = (duration_in_months IS NOT NULL))
);
CREATE INDEX coupons_list ON coupons (merchant_id, livemode, seq) WHERE deleted_at IS NULL;

CREATE TABLE promotion_codes (
  id text PRIMARY KEY,
  merchant_id text NOT NULL,
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  coupon_id text NOT NULL,
  code text NOT NULL CHECK (code ~ '^[A-Za-z0-9-]+$' AND length(code) <= 500),
  active boolean NOT NULL,
  customer_id text,
  expires_at timestamptz,
  max_redemptions integer CHECK (max_redemptions > 0),
  minimum_amount bigint CHECK (minimum_amount >= 0),
  minimum_amount_currency text CHECK (minimum_amount_currency ~ '^[a-z]{3}$'),
  metadata jsonb NOT NULL DEFAULT '{}',
  times_redeemed integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
  CHECK ((minimum_amount IS NULL) = (minimum_amount_currency IS NULL)),
  FOREIGN KEY (merchant_id, livemode, coupon_id) REFERENCES coupons (merchant_id, livemode, id)
);
CREATE INDEX promotion_codes_list ON promotion_codes (merchant_id, livemode, seq);
CREATE INDEX promotion_codes_coupon ON promotion_codes (merchant_id, livemode, coupon_id, seq);
-- The shopper's word finds its code: one active code per word and customer (or for anyone), case aside.
CREATE UNIQUE INDEX promotion_codes_word ON promotion_codes (merchant_id, livemode, lower(code), coalesce(customer_id, '')) WHERE active;

-- A merchant's coupons and codes are its own: each request sees only its merchant's rows (migration 0017).
ALTER TABLE coupons ENABLE ROW LEVEL SECURITY;
ALTER TABLE coupons FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON coupons
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE promotion_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE promotion_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON promotion_codes
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- A session's discount: the coupon's terms as they were when it was applied (with the code that gave it, if any),
-- and what it takes off the items, part of `amount_total` (items - discount + shipping). Sessions made before took
-- none (the parameters were refused), so null, 0 and false are their truth.
ALTER TABLE checkout_sessions ADD COLUMN discount jsonb;
ALTER TABLE checkout_sessions ADD COLUMN discount_coupon_id text;
ALTER TABLE checkout_sessions ADD COLUMN discount_promotion_code_id text;
ALTER TABLE checkout_sessions ADD COLUMN amount_discount bigint NOT NULL DEFAULT 0 CHECK (amount_discount >= 0);
ALTER TABLE checkout_sessions ADD COLUMN allow_promotion_codes boolean NOT NULL DEFAULT false;
-- Codes the page refused (unknown, expired, used up …): past a few, it takes no more, so that a page cannot be used
-- to try words until one works.
ALTER TABLE checkout_sessions ADD COLUMN promotion_code_refusals integer NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_discount_coupon CHECK ((discount IS NULL) = (discount_coupon_id IS NULL));
-- Counting a coupon's or a code's redemptions reads the sessions that carry it.
CREATE INDEX checkout_sessions_coupon ON checkout_sessions (merchant_id, livemode, discount_coupon_id) WHERE discount_coupon_id IS NOT NULL;
CREATE INDEX checkout_sessions_promotion_code ON checkout_sessions (merchant_id, livemode, discount_promotion_code_id) WHERE discount_promotion_code_id IS NOT NULL;

-- A payment that takes a discount takes one of its redemptions, in the statement that starts the payment's attempt,
-- which reads the session's discount itself (one changed since the page was read is the one taken). A limited
-- coupon's row (and code's) is locked, and the sessions that hold a redemption are counted: those paid, and those
-- whose payment is under way or authorized. A session whose try failed holds none (its PaymentIntent is back to
-- needing a payment method), so nothing has to be given back. Two payments cannot both take the last redemption: the
-- second waits for the first's lock, then counts it. Raises `coffer_discount_refused <reason>` when the discount is
-- used up; the whole statement (the attempt) is then undone. Whether a coupon may be applied at all (deleted,
-- expired, inactive) is checked when it is applied, not here: a discount a session took stays with it.
CREATE FUNCTION coffer_discount_take(p_session text)
  RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  s_row checkout_sessions%ROWTYPE;
  c coupons%ROWTYPE;
  pc promotion_codes%ROWTYPE;
  held bigint;
BEGIN
  SELECT * INTO s_row FROM checkout_sessions WHERE id = p_session;
  IF NOT FOUND OR s_row.discount_coupon_id IS NULL THEN
    RETURN true;
  END IF;
  -- Only a limited coupon (or code) is locked: payments with an unlimited one do not wait for each other.
  SELECT * INTO c FROM coupons WHERE merchant_id = s_row.merchant_id AND livemode = s_row.livemode AND id = s_row.discount_coupon_id;
  IF c.max_redemptions IS NOT NULL THEN
    PERFORM 1 FROM coupons WHERE merchant_id = c.merchant_id AND livemode = c.livemode AND id = c.id FOR UPDATE;
    SELECT count(*) INTO held FROM checkout_sessions s JOIN payment_intents i ON i.id = s.payment_intent_id
      WHERE s.merchant_id = s_row.merchant_id AND s.livemode = s_row.livemode AND s.discount_coupon_id = c.id AND s.id <> p_session
        AND (s.status = 'complete' OR (s.status = 'open' AND i.status IN ('processing', 'requires_action', 'requires_capture', 'succeeded')));
    IF held >= c.max_redemptions THEN
      RAISE EXCEPTION 'coffer_discount_refused coupon_used_up';
    END IF;
  END IF;
  IF s_row.discount_promotion_code_id IS NOT NULL THEN
    SELECT * INTO pc FROM promotion_codes WHERE id = s_row.discount_promotion_code_id;
    IF pc.max_redemptions IS NOT NULL THEN
      PERFORM 1 FROM promotion_codes WHERE id = pc.id FOR UPDATE;
      SELECT count(*) INTO held FROM checkout_sessions s JOIN payment_intents i ON i.id = s.payment_intent_id
        WHERE s.merchant_id = s_row.merchant_id AND s.livemode = s_row.livemode AND s.discount_promotion_code_id = pc.id AND s.id <> p_session
          AND (s.status = 'complete' OR (s.status = 'open' AND i.status IN ('processing', 'requires_action', 'requires_capture', 'succeeded')));
      IF held >= pc.max_redemptions THEN
        RAISE EXCEPTION 'coffer_discount_refused code_used_up';
      END IF;
    END IF;
  END IF;
  RETURN true;
END
$$;
