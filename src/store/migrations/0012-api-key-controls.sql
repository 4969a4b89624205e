-- Restricted keys (rk_…) with per-resource read or write permissions, an optional list of client addresses per
-- key, a name, and the link from a rolled key to the key that replaced it.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_kind_check CHECK (kind IN ('secret', 'publishable', 'restricted'));
-- {"payment_intents": "write", "refunds": "read", …}; empty for other kinds, which have fixed powers.
ALTER TABLE api_keys ADD COLUMN permissions jsonb NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_permissions_restricted CHECK (kind = 'restricted' OR permissions = '{}'::jsonb);
-- ["203.0.113.0/24", "2001:db8::/32", …]; null: any address.
ALTER TABLE api_keys ADD COLUMN allowed_addresses jsonb;
ALTER TABLE api_keys ADD COLUMN name text;
ALTER TABLE api_keys ADD COLUMN rolled_to text REFERENCES api_keys (id);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at);
