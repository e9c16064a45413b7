-- Executor: per-user books on the one shared exchange account, SELLs sized in base, and the
-- trading states the loss breaker moves (docs/design.md#per-user-books,
-- docs/design.md#sells-by-base-amount, docs/design.md#trading-states).
--
-- * book_positions: per user, mode and market, what the user holds (quantity of the base asset),
--   its cost in EUR (fees included, average-cost method) and the realized P&L. Written only by
--   services/executor/ledger.py (record_fills), in the transaction that records the fills.
-- * book_entries: one row per recorded fill with its effect on the book (quantity, cost, realized
--   P&L), so "realized today" is a sum over a window and a rebuild from trade_history can be
--   compared entry by entry.
-- * trade_executions.amount_base: the base amount a SELL is sent with (checked against the
--   user's position under the user's lock); NULL for BUYs, which stay amountQuote.
-- * trade_history may be updated (fee refreshes of recorded fills: the books follow them).
-- * trading_states: per user and mode ACTIVE or REDUCING (the loss breaker), with the peak of the
--   user's cumulative P&L for the drawdown limit; HALTED stays the kill switch (trading_enabled).
-- * loss limits: per user on the policy, account-wide on the account settings; NULL = no limit.

ALTER TABLE oracle.trade_executions
  ADD COLUMN IF NOT EXISTS amount_base numeric(38, 18)
    CONSTRAINT trade_executions_amount_base_check CHECK (amount_base IS NULL OR amount_base > 0);

GRANT UPDATE ON oracle.trade_history TO oracle_executor;

CREATE TABLE IF NOT EXISTS oracle.book_positions (
  user_id           oracle.user_id NOT NULL,
  mode              text           NOT NULL CHECK (mode IN ('live', 'paper')),
  market            oracle.market  NOT NULL,
  quantity          numeric(38, 18) NOT NULL DEFAULT 0 CHECK (quantity >= 0),
  cost_eur          numeric(38, 18) NOT NULL DEFAULT 0,
  realized_pnl_eur  numeric(38, 18) NOT NULL DEFAULT 0,
  fills             bigint          NOT NULL DEFAULT 0,
  -- the last fill applied, in fill order (filled_at, execution_id, fill_id): a fill sorting
  -- after it is applied on top; any other fill (found late, fee refreshed) rebuilds the book
  last_filled_at    timestamptz,
  last_execution_id uuid,
  last_fill_id      text,
  updated_at        timestamptz     NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, mode, market)
);

CREATE TABLE IF NOT EXISTS oracle.book_entries (
  execution_id      uuid            NOT NULL,
  fill_id           text            NOT NULL,
  user_id           oracle.user_id  NOT NULL,
  mode              text            NOT NULL CHECK (mode IN ('live', 'paper')),
  market            oracle.market   NOT NULL,
  side              oracle.side     NOT NULL,
  filled_at         timestamptz     NOT NULL,
  quantity_delta    numeric(38, 18) NOT NULL,
  cost_delta_eur    numeric(38, 18) NOT NULL,
  realized_pnl_eur  numeric(38, 18) NOT NULL,
  PRIMARY KEY (execution_id, fill_id),
  FOREIGN KEY (execution_id, fill_id) REFERENCES oracle.trade_history (execution_id, fill_id)
);
CREATE INDEX IF NOT EXISTS book_entries_user_time ON oracle.book_entries (user_id, mode, filled_at);

CREATE TABLE IF NOT EXISTS oracle.trading_states (
  user_id        oracle.user_id  NOT NULL,
  mode           text            NOT NULL CHECK (mode IN ('live', 'paper')),
  state          text            NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'REDUCING')),
  reason         text            NOT NULL DEFAULT '',
  figures        jsonb           NOT NULL DEFAULT '{}',
  peak_pnl_eur   numeric(38, 18),  -- NULL: to be started afresh at the next evaluation
  updated_at     timestamptz     NOT NULL DEFAULT now(),
  updated_by     text            NOT NULL DEFAULT '',
  PRIMARY KEY (user_id, mode)
);

ALTER TABLE oracle.trading_policies
  ADD COLUMN IF NOT EXISTS max_daily_loss_eur numeric(20, 2)
    CONSTRAINT trading_policies_max_daily_loss_eur_check CHECK (max_daily_loss_eur >= 0),
  ADD COLUMN IF NOT EXISTS max_drawdown_eur numeric(20, 2)
    CONSTRAINT trading_policies_max_drawdown_eur_check CHECK (max_drawdown_eur >= 0);

ALTER TABLE oracle.account_settings
  ADD COLUMN IF NOT EXISTS daily_loss_limit_eur numeric(20, 2)
    CONSTRAINT account_settings_daily_loss_limit_eur_check CHECK (daily_loss_limit_eur >= 0),
  ADD COLUMN IF NOT EXISTS trading_state text NOT NULL DEFAULT 'ACTIVE'
    CONSTRAINT account_settings_trading_state_check CHECK (trading_state IN ('ACTIVE', 'REDUCING')),
  ADD COLUMN IF NOT EXISTS state_reason text NOT NULL DEFAULT '';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['book_positions', 'book_entries', 'trading_states'] LOOP
    EXECUTE format('ALTER TABLE oracle.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE oracle.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS own_rows ON oracle.%I', t);
    EXECUTE format('CREATE POLICY own_rows ON oracle.%I USING (user_id = oracle.app_user()) '
                   'WITH CHECK (user_id = oracle.app_user())', t);
    EXECUTE format('DROP POLICY IF EXISTS cross_user_definer ON oracle.%I', t);
    EXECUTE format('CREATE POLICY cross_user_definer ON oracle.%I TO oracle_definer USING (true) '
                   'WITH CHECK (true)', t);
  END LOOP;
END $$;

REVOKE ALL ON oracle.book_positions, oracle.book_entries, oracle.trading_states FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON oracle.book_positions, oracle.book_entries TO oracle_executor;
GRANT SELECT, INSERT, UPDATE ON oracle.trading_states TO oracle_executor;
GRANT SELECT ON oracle.book_positions, oracle.book_entries TO oracle_definer;

-- Every user's open positions of one mode (no user ids: aggregates per position) with the
-- realized P&L of fills since p_day_start: the account-wide daily loss and the unattributed
-- remainder (what the account holds beyond the users' books).
CREATE OR REPLACE FUNCTION oracle.account_book(p_mode text, p_day_start timestamptz)
  RETURNS TABLE (market text, quantity numeric, cost_eur numeric, realized_pnl_eur numeric,
                 realized_today_eur numeric)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT p.market::text, p.quantity, p.cost_eur, p.realized_pnl_eur,
         COALESCE((SELECT sum(e.realized_pnl_eur) FROM oracle.book_entries e
                    WHERE e.user_id = p.user_id AND e.mode = p.mode AND e.market = p.market
                      AND e.filled_at >= p_day_start), 0)
    FROM oracle.book_positions p
   WHERE p.mode = p_mode
$$;
ALTER FUNCTION oracle.account_book(text, timestamptz) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.account_book(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.account_book(text, timestamptz) TO oracle_executor;

-- The users with a book of one mode (ids only): GetPositions for every user, the book check.
CREATE OR REPLACE FUNCTION oracle.book_users(p_mode text)
  RETURNS TABLE (user_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT DISTINCT p.user_id::text FROM oracle.book_positions p WHERE p.mode = p_mode ORDER BY 1
$$;
ALTER FUNCTION oracle.book_users(text) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.book_users(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.book_users(text) TO oracle_executor;
