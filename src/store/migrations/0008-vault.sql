-- The card vault. Card numbers are stored only here, encrypted (AES-256-GCM under data keys that a
-- key-encryption key outside the database wraps), in a schema owned by the role coffer_vault. The application's
-- role has no privilege on these tables: it can only call the vault's functions, which run as coffer_vault
-- (SECURITY DEFINER) and hand out ciphertexts that only the vault's keys open. Creating the role needs a
-- migrating user with CREATEROLE (see docs/decisions/0006-vault-database-role.md).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coffer_vault') THEN
    CREATE ROLE coffer_vault NOLOGIN;
  END IF;
END $$;

CREATE SCHEMA vault AUTHORIZATION coffer_vault;
REVOKE ALL ON SCHEMA vault FROM PUBLIC;
GRANT USAGE ON SCHEMA vault TO PUBLIC;

CREATE TABLE vault.data_keys (
  id text PRIMARY KEY,
  kek_id text NOT NULL,
  wrapped bytea NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX data_keys_kek_id ON vault.data_keys (kek_id);

CREATE TABLE vault.cards (
  id text PRIMARY KEY,
  -- version | data key id | nonce | ciphertext | tag, bound to this id (src/vault/envelope.ts).
  ciphertext bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE vault.data_keys OWNER TO coffer_vault;
ALTER TABLE vault.cards OWNER TO coffer_vault;
REVOKE ALL ON vault.data_keys, vault.cards FROM PUBLIC;

CREATE FUNCTION vault.store_card(p_id text, p_ciphertext bytea) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  INSERT INTO vault.cards (id, ciphertext) VALUES (p_id, p_ciphertext);
$$;

CREATE FUNCTION vault.card_ciphertext(p_id text) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  SELECT ciphertext FROM vault.cards WHERE id = p_id;
$$;

CREATE FUNCTION vault.insert_data_key(p_id text, p_kek_id text, p_wrapped bytea, p_created_at timestamptz) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  INSERT INTO vault.data_keys (id, kek_id, wrapped, created_at) VALUES (p_id, p_kek_id, p_wrapped, p_created_at);
$$;

CREATE FUNCTION vault.find_data_key(p_id text)
RETURNS TABLE (id text, kek_id text, wrapped bytea, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  SELECT d.id, d.kek_id, d.wrapped, d.created_at FROM vault.data_keys d WHERE d.id = p_id;
$$;

CREATE FUNCTION vault.data_keys_after(p_after text, p_limit integer)
RETURNS TABLE (id text, kek_id text, wrapped bytea, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  SELECT d.id, d.kek_id, d.wrapped, d.created_at FROM vault.data_keys d
  WHERE p_after IS NULL OR d.id > p_after ORDER BY d.id LIMIT p_limit;
$$;

-- Compare-and-set on the wrapping key: two rewraps at once each rewrap a row at most once.
CREATE FUNCTION vault.replace_wrapping(p_id text, p_expected_kek_id text, p_kek_id text, p_wrapped bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = vault, pg_temp AS $$
BEGIN
  UPDATE vault.data_keys SET kek_id = p_kek_id, wrapped = p_wrapped WHERE id = p_id AND kek_id = p_expected_kek_id;
  RETURN FOUND;
END $$;

CREATE FUNCTION vault.count_wrapped_under(p_kek_id text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = vault, pg_temp AS $$
  SELECT count(*) FROM vault.data_keys WHERE kek_id = p_kek_id;
$$;

ALTER FUNCTION vault.store_card(text, bytea) OWNER TO coffer_vault;
ALTER FUNCTION vault.card_ciphertext(text) OWNER TO coffer_vault;
ALTER FUNCTION vault.insert_data_key(text, text, bytea, timestamptz) OWNER TO coffer_vault;
ALTER FUNCTION vault.find_data_key(text) OWNER TO coffer_vault;
ALTER FUNCTION vault.data_keys_after(text, integer) OWNER TO coffer_vault;
ALTER FUNCTION vault.replace_wrapping(text, text, text, bytea) OWNER TO coffer_vault;
ALTER FUNCTION vault.count_wrapped_under(text) OWNER TO coffer_vault;

-- Payment methods whose card is in the vault point at it; tokens are single-use handles on a vaulted card.
ALTER TABLE payment_methods ADD COLUMN vault_card_id text;

CREATE TABLE tokens (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  vault_card_id text NOT NULL,
  card jsonb NOT NULL,
  client_ip text,
  used boolean NOT NULL DEFAULT false
);
