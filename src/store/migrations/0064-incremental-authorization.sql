-- Incremental authorization (decision 0056): a card payment authorized for manual capture may have its hold raised
-- before capture, when the merchant asked for it (`payment_method_options[card][request_incremental_authorization]`)
-- and the acquirer made it available for that authorization.
ALTER TABLE payment_intents ADD COLUMN card_request_incremental_authorization text
  CHECK (card_request_incremental_authorization IN ('if_available', 'never'));

-- An increment is sent to the acquirer like a capture or a cancellation: marked in flight first, recorded after.
ALTER TABLE payment_intents DROP CONSTRAINT payment_intents_operation_in_flight_check;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_operation_in_flight_check
  CHECK (operation_in_flight IN ('capture', 'cancel', 'increment'));

-- Each try counts (the acquirer allows ten, declines included), and numbers the try's key at the acquirer
-- (`<charge>:increment:<n>`); each approved one replaces the ledger's reservation, numbered the same way
-- (`<charge>:authorization:<n>` replaces the one before, which the increment voids).
ALTER TABLE charges ADD COLUMN increment_attempts integer NOT NULL DEFAULT 0 CHECK (increment_attempts BETWEEN 0 AND 10);
ALTER TABLE charges ADD COLUMN authorization_increments integer NOT NULL DEFAULT 0;
ALTER TABLE charges ADD CONSTRAINT charges_increments_check CHECK (authorization_increments BETWEEN 0 AND increment_attempts);
-- The latest try: its number and amount, what it took from the merchant's daily amount limits (given back if it
-- fails), and, once declined or refused by the acquirer, why (so that a retry of its request answers the same).
ALTER TABLE charges ADD COLUMN increment_try jsonb;

-- Raises (or, with a negative p_delta, lowers) what a charge took from a limit's amount counter, without counting
-- another payment: an increment adds its difference to the day's total, refused as coffer_limit_take refuses; a
-- declined one gives it back (the try keeps what it took, in charges.increment_try, and is recorded once).
CREATE FUNCTION coffer_limit_raise(p_limit text, p_subject text, p_window text, p_merchant text, p_charge text,
                                   p_delta bigint, p_max_amount bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$
DECLARE
  total bigint;
BEGIN
  INSERT INTO payment_limit_counters AS c (limit_id, subject_key, window_key, merchant_id, amount, count)
    VALUES (p_limit, p_subject, p_window, p_merchant, greatest(p_delta, 0), 0)
    ON CONFLICT (limit_id, subject_key, window_key) DO UPDATE SET amount = c.amount + p_delta
    RETURNING amount INTO total;
  IF p_delta > 0 AND p_max_amount IS NOT NULL AND total > p_max_amount THEN
    RAISE EXCEPTION 'coffer_limit_exceeded %', p_limit;
  END IF;
  RETURN true;
END
$$;

-- The card sandbox raises a hold at most to twice the first amount it authorized (kept here once raised).
ALTER TABLE sandbox_card_payments ADD COLUMN first_amount bigint;
ALTER TABLE sandbox_card_operations DROP CONSTRAINT sandbox_card_operations_kind_check;
ALTER TABLE sandbox_card_operations ADD CONSTRAINT sandbox_card_operations_kind_check
  CHECK (kind IN ('capture', 'void', 'increment'));
