-- Stripe's Products and one-time Prices: the merchant's catalogue, which Checkout Sessions sell by price id
-- (`line_items[][price]`). A product's id may be the merchant's own (Stripe's `id` on create), so it is unique per
-- merchant and mode, not across the installation; a price's id is always Coffer's. A price's amount and currency
-- never change once it exists, as at Stripe: a new amount is a new price. Neither is removed from the database:
-- a product deleted through the API keeps its row (`deleted_at`), since sessions and events name it.
CREATE TABLE products (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  id text NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  name text NOT NULL CHECK (name <> ''),
  active boolean NOT NULL,
  type text NOT NULL CHECK (type IN ('service', 'good')),
  description text,
  images jsonb NOT NULL DEFAULT '[]',
  marketing_features jsonb NOT NULL DEFAULT '[]',
  metadata jsonb NOT NULL DEFAULT '{}',
  default_price_id text,
  shippable boolean,
  statement_descriptor text,
  unit_label text,
  url text,
  deleted_at timestamptz,
  PRIMARY KEY (merchant_id, livemode, id)
);
CREATE INDEX products_list ON products (merchant_id, livemode, seq) WHERE deleted_at IS NULL;

CREATE TABLE prices (
  id text PRIMARY KEY,
  merchant_id text NOT NULL,
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  product_id text NOT NULL,
  active boolean NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  unit_amount bigint NOT NULL CHECK (unit_amount >= 0),
  nickname text,
  lookup_key text,
  tax_behavior text NOT NULL CHECK (tax_behavior IN ('unspecified', 'inclusive', 'exclusive')),
  metadata jsonb NOT NULL DEFAULT '{}',
  FOREIGN KEY (merchant_id, livemode, product_id) REFERENCES products (merchant_id, livemode, id)
);
CREATE INDEX prices_list ON prices (merchant_id, livemode, seq);
CREATE INDEX prices_product ON prices (merchant_id, livemode, product_id, seq);
-- A lookup key names one price of a merchant and mode at a time (`transfer_lookup_key` moves it).
CREATE UNIQUE INDEX prices_lookup_key ON prices (merchant_id, livemode, lookup_key) WHERE lookup_key IS NOT NULL;

-- A merchant's catalogue is its own: each request sees only its merchant's rows (migration 0017).
ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON products
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE prices FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON prices
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
