-- Executor: the account-wide daily notional cap lives in the account's settings row.
--
-- It was the executor's environment variable EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR, so
-- replicas could disagree and changing it needed a redeploy. Now every claim reads it from this
-- row under the account row lock (the same read as the global kill switch), and an operator sets
-- it with UpdateAccountSettings (`oraclectl account set --daily-notional-cap-eur`), under the
-- exclusive account lock, audited. 1000 EUR was the variable's default. `version` is the row's
-- optimistic-concurrency version: UpdateAccountSettings and the global kill switch increment it.
-- The executor's grants on the table (SELECT, UPDATE; migration 0001) cover the new columns.
ALTER TABLE oracle.account_settings
  ADD COLUMN IF NOT EXISTS daily_notional_cap_eur numeric(20, 2) NOT NULL DEFAULT 1000
    CONSTRAINT account_settings_daily_notional_cap_eur_check CHECK (daily_notional_cap_eur >= 0),
  ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1
    CONSTRAINT account_settings_version_check CHECK (version >= 1);
