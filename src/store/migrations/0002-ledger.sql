-- The double-entry ledger. Accounts keep TigerBeetle's four counters; transfers are immutable and move a positive
-- amount from one debit account to one credit account of the same currency. Balances change only inside
-- ledger_apply(), which locks every account it touches in id order before changing any of them.

CREATE TABLE ledger_accounts (
  id bigserial PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  currency text NOT NULL,
  code text NOT NULL CHECK (code IN ('provider_clearing', 'merchant_incoming', 'merchant_available')),
  debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (merchant_id, livemode, currency, code),
  UNIQUE (id, currency)
);

CREATE TABLE ledger_transfers (
  id bigserial PRIMARY KEY,
  transfer_key text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('single', 'pending', 'post_pending', 'void_pending')),
  reason text NOT NULL,
  debit_account_id bigint NOT NULL,
  credit_account_id bigint NOT NULL,
  currency text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  pending_id bigint REFERENCES ledger_transfers (id),
  merchant_id text NOT NULL,
  livemode boolean NOT NULL,
  payment_intent_id text,
  charge_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (debit_account_id, currency) REFERENCES ledger_accounts (id, currency),
  FOREIGN KEY (credit_account_id, currency) REFERENCES ledger_accounts (id, currency),
  CHECK (debit_account_id <> credit_account_id),
  CHECK ((kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL))
);
-- A pending transfer is resolved (posted or voided) at most once.
CREATE UNIQUE INDEX ledger_transfers_resolved_once ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_charge ON ledger_transfers (charge_id);

CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
  FOR EACH ROW EXECUTE FUNCTION coffer_refuse_change();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
  FOR EACH STATEMENT EXECUTE FUNCTION coffer_refuse_change();

-- An account never changes owner, mode, currency or kind, and its counters change only inside ledger_apply().
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR current_setting('coffer.ledger_writer', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'coffer: ledger balances change only through ledger_apply()' USING ERRCODE = 'P0001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.merchant_id <> OLD.merchant_id OR NEW.livemode <> OLD.livemode
     OR NEW.currency <> OLD.currency OR NEW.code <> OLD.code OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'coffer: a ledger account''s identity never changes' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_balances_guarded
  BEFORE UPDATE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();

-- The id of an account, created empty on first use. Creating takes no lock on existing rows.
CREATE FUNCTION ledger_account_id(p_merchant text, p_livemode boolean, p_currency text, p_code text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT id INTO v_id FROM ledger_accounts
    WHERE merchant_id = p_merchant AND livemode = p_livemode AND currency = p_currency AND code = p_code;
  IF v_id IS NULL THEN
    INSERT INTO ledger_accounts (merchant_id, livemode, currency, code)
      VALUES (p_merchant, p_livemode, p_currency, p_code)
      ON CONFLICT (merchant_id, livemode, currency, code) DO NOTHING
      RETURNING id INTO v_id;
    IF v_id IS NULL THEN
      SELECT id INTO v_id FROM ledger_accounts
        WHERE merchant_id = p_merchant AND livemode = p_livemode AND currency = p_currency AND code = p_code;
    END IF;
  END IF;
  RETURN v_id;
END $$;

-- Applies a list of transfer commands (see src/domain/ledger.ts) all or nothing, in one round trip:
--   {"kind":"single"|"pending","key","debit","credit","amount","reason"}
--   {"kind":"post_pending","key","pending_key","amount","reason"}   (amount <= the pending amount; rest released)
--   {"kind":"void_pending","key","pending_key","reason"}
CREATE FUNCTION ledger_apply(p_merchant text, p_livemode boolean, p_currency text, p_commands jsonb,
                             p_payment_intent text, p_charge text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_cmd jsonb;
  v_kind text;
  v_amount bigint;
  v_debit bigint;
  v_credit bigint;
  v_account_ids bigint[] := '{}';
  v_resolved jsonb := '[]';
  v_pending ledger_transfers%ROWTYPE;
BEGIN
  IF jsonb_typeof(p_commands) IS DISTINCT FROM 'array' OR jsonb_array_length(p_commands) = 0 THEN
    RAISE EXCEPTION 'coffer: ledger_apply needs a non-empty array of commands' USING ERRCODE = 'P0001';
  END IF;
  -- Accounts used for the first time are created in a fixed order (by code), so that two transactions creating
  -- the same new accounts cannot wait on each other's inserts in opposite orders.
  PERFORM ledger_account_id(p_merchant, p_livemode, p_currency, code)
    FROM (SELECT DISTINCT c->>'debit' AS code FROM jsonb_array_elements(p_commands) c WHERE c->>'kind' IN ('single', 'pending')
          UNION SELECT DISTINCT c->>'credit' FROM jsonb_array_elements(p_commands) c WHERE c->>'kind' IN ('single', 'pending')) codes
    ORDER BY code;
  -- First pass: find every account, so that all of them are locked once, in id order, before any change.
  FOR v_cmd IN SELECT value FROM jsonb_array_elements(p_commands) LOOP
    v_kind := v_cmd->>'kind';
    IF v_kind IN ('single', 'pending') THEN
      v_debit := ledger_account_id(p_merchant, p_livemode, p_currency, v_cmd->>'debit');
      v_credit := ledger_account_id(p_merchant, p_livemode, p_currency, v_cmd->>'credit');
    ELSIF v_kind IN ('post_pending', 'void_pending') THEN
      SELECT * INTO v_pending FROM ledger_transfers WHERE transfer_key = v_cmd->>'pending_key';
      IF NOT FOUND OR v_pending.kind <> 'pending' OR v_pending.merchant_id <> p_merchant
         OR v_pending.livemode <> p_livemode OR v_pending.currency <> p_currency THEN
        RAISE EXCEPTION 'coffer: no pending transfer % for this merchant and currency', v_cmd->>'pending_key'
          USING ERRCODE = 'P0001';
      END IF;
      v_debit := v_pending.debit_account_id;
      v_credit := v_pending.credit_account_id;
    ELSE
      RAISE EXCEPTION 'coffer: unknown transfer kind %', v_kind USING ERRCODE = 'P0001';
    END IF;
    v_resolved := v_resolved || jsonb_build_array(jsonb_build_object('debit', v_debit, 'credit', v_credit));
    v_account_ids := v_account_ids || v_debit || v_credit;
  END LOOP;
  PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_account_ids) ORDER BY id FOR NO KEY UPDATE;
  PERFORM set_config('coffer.ledger_writer', 'on', true);

  FOR i IN 0 .. jsonb_array_length(p_commands) - 1 LOOP
    v_cmd := p_commands->i;
    v_kind := v_cmd->>'kind';
    v_debit := (v_resolved->i->>'debit')::bigint;
    v_credit := (v_resolved->i->>'credit')::bigint;
    IF v_kind IN ('single', 'pending') THEN
      v_amount := (v_cmd->>'amount')::bigint;
      INSERT INTO ledger_transfers (transfer_key, kind, reason, debit_account_id, credit_account_id, currency, amount,
                                    merchant_id, livemode, payment_intent_id, charge_id)
        VALUES (v_cmd->>'key', v_kind, v_cmd->>'reason', v_debit, v_credit, p_currency, v_amount,
                p_merchant, p_livemode, p_payment_intent, p_charge);
      IF v_kind = 'single' THEN
        UPDATE ledger_accounts SET
            debits_posted = debits_posted + CASE WHEN id = v_debit THEN v_amount ELSE 0 END,
            credits_posted = credits_posted + CASE WHEN id = v_credit THEN v_amount ELSE 0 END
          WHERE id IN (v_debit, v_credit);
      ELSE
        UPDATE ledger_accounts SET
            debits_pending = debits_pending + CASE WHEN id = v_debit THEN v_amount ELSE 0 END,
            credits_pending = credits_pending + CASE WHEN id = v_credit THEN v_amount ELSE 0 END
          WHERE id IN (v_debit, v_credit);
      END IF;
    ELSE
      SELECT * INTO v_pending FROM ledger_transfers WHERE transfer_key = v_cmd->>'pending_key';
      IF v_kind = 'post_pending' THEN
        v_amount := (v_cmd->>'amount')::bigint;
        IF v_amount IS NULL OR v_amount <= 0 OR v_amount > v_pending.amount THEN
          RAISE EXCEPTION 'coffer: cannot post % of pending transfer % (amount %)', v_amount, v_pending.transfer_key,
            v_pending.amount USING ERRCODE = 'P0001';
        END IF;
      ELSE
        v_amount := v_pending.amount;
      END IF;
      -- The unique index on pending_id refuses a second resolution of the same pending transfer.
      INSERT INTO ledger_transfers (transfer_key, kind, reason, debit_account_id, credit_account_id, currency, amount,
                                    pending_id, merchant_id, livemode, payment_intent_id, charge_id)
        VALUES (v_cmd->>'key', v_kind, v_cmd->>'reason', v_debit, v_credit, p_currency, v_amount,
                v_pending.id, p_merchant, p_livemode, p_payment_intent, p_charge);
      UPDATE ledger_accounts SET
          debits_pending = debits_pending - CASE WHEN id = v_debit THEN v_pending.amount ELSE 0 END,
          credits_pending = credits_pending - CASE WHEN id = v_credit THEN v_pending.amount ELSE 0 END,
          debits_posted = debits_posted
            + CASE WHEN id = v_debit AND v_kind = 'post_pending' THEN v_amount ELSE 0 END,
          credits_posted = credits_posted
            + CASE WHEN id = v_credit AND v_kind = 'post_pending' THEN v_amount ELSE 0 END
        WHERE id IN (v_debit, v_credit);
    END IF;
  END LOOP;
  PERFORM set_config('coffer.ledger_writer', 'off', true);
END $$;
