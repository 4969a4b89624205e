-- Whether a merchant's own servers may send card numbers to the live API with a secret or restricted key (decision
-- 0050). Off for every merchant, existing ones included: a merchant that sent them before must be allowed by the
-- operator, who thereby records that the merchant's servers are in PCI DSS scope. Test mode is not concerned.
ALTER TABLE merchants ADD COLUMN live_raw_card_data boolean NOT NULL DEFAULT false;
