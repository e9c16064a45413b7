-- Executor: the claim's account-wide reads cost the same after a million executions as after none
-- (docs/design.md#speed-that-lasts).
--
-- Every claim of the account queues on the account settings row (FOR UPDATE), so what runs while
-- it is held decides the account's throughput. Before this migration two of those reads scanned
-- every execution ever made: account_in_flight_eur (an OR of "not final" and "settled since the
-- balance was read" that no index could serve) and paper_wallet (a sum over every paper fill).
--
-- * account_in_flight_eur: the same rule as a sum of two index ranges — the executions still
--   moving (a partial index on the non-final ones, by mode, side and market: as small as what is
--   in flight) and those settled since the balance was read (an index by mode and update time:
--   as small as what moved since). The two sets are disjoint (FAILED is final), so UNION ALL
--   adds each execution at most once, exactly as the OR did.
-- * paper_wallet: running totals per market (oracle.paper_wallet_totals), kept by a trigger in
--   the very transaction that changes a paper execution's filled figures, so the function sums
--   one row per market. The rule of what a paper fill spends stays in one place:
--   oracle.paper_wallet_effect. Totals are numeric sums: exactly what the old scan returned.
-- * lock_account_for_claim: the claim's account section in one round trip — the settings row
--   locked (FOR UPDATE), then, each statement with a snapshot taken after the lock was granted
--   (PL/pgSQL under READ COMMITTED), the account's notional of the UTC day and the EUR in flight.
--   SECURITY INVOKER: the executor's own grants, row-level security unchanged.

CREATE INDEX trade_executions_in_flight ON oracle.trade_executions (mode, side, market)
  WHERE NOT oracle.execution_is_final(status);
CREATE INDEX trade_executions_mode_updated ON oracle.trade_executions (mode, updated_at);

-- p_since also bounds the second range from above (p_since + 100 years): a range with two bounds
-- is estimated as narrow even in a generic plan, so the planner keeps to the index.
CREATE OR REPLACE FUNCTION oracle.account_in_flight_eur(p_mode text, p_side text, p_market text,
                                                        p_since timestamptz)
  RETURNS numeric
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(sum(s.amount_quote), 0) FROM (
    SELECT e.amount_quote FROM oracle.trade_executions e
     WHERE e.mode = p_mode AND e.side = p_side AND (p_market IS NULL OR e.market = p_market)
       AND NOT oracle.execution_is_final(e.status)
    UNION ALL
    SELECT e.amount_quote FROM oracle.trade_executions e
     WHERE e.mode = p_mode AND e.updated_at >= p_since AND e.updated_at < p_since + interval '100 years'
       AND e.side = p_side AND (p_market IS NULL OR e.market = p_market)
       AND oracle.execution_is_final(e.status) AND e.status <> 'FAILED'
  ) s
$$;

-- What one paper execution has spent (EUR, net of sells' proceeds) and holds (base asset).
CREATE FUNCTION oracle.paper_wallet_effect(p_mode text, p_side text, p_filled_amount numeric,
                                           p_filled_amount_quote numeric, p_fee_paid numeric,
                                           OUT eur_spent numeric, OUT base_held numeric)
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN p_mode <> 'paper' OR NOT COALESCE(p_filled_amount, 0) > 0 THEN 0
              WHEN p_side = 'buy' THEN p_filled_amount_quote + p_fee_paid
              ELSE -(p_filled_amount_quote - p_fee_paid) END,
         CASE WHEN p_mode <> 'paper' OR NOT COALESCE(p_filled_amount, 0) > 0 THEN 0
              WHEN p_side = 'buy' THEN p_filled_amount
              ELSE -p_filled_amount END
$$;
REVOKE ALL ON FUNCTION oracle.paper_wallet_effect(text, text, numeric, numeric, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.paper_wallet_effect(text, text, numeric, numeric, numeric) TO oracle_definer;

CREATE TABLE oracle.paper_wallet_totals (
  market     oracle.market PRIMARY KEY,
  eur_spent  numeric NOT NULL DEFAULT 0,
  base_held  numeric NOT NULL DEFAULT 0
);
REVOKE ALL ON oracle.paper_wallet_totals FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON oracle.paper_wallet_totals TO oracle_definer;

INSERT INTO oracle.paper_wallet_totals (market, eur_spent, base_held)
SELECT e.market, sum(f.eur_spent), sum(f.base_held)
  FROM oracle.trade_executions e,
       oracle.paper_wallet_effect(e.mode, e.side, e.filled_amount, e.filled_amount_quote, e.fee_paid) f
 WHERE e.mode = 'paper' AND e.filled_amount > 0
 GROUP BY e.market;

-- The trigger: what a paper execution's change adds to its market's totals (its new effect less
-- its old one), in the transaction of the change.
CREATE FUNCTION oracle.paper_wallet_follow() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
DECLARE
  now_ record;
  was record;
BEGIN
  SELECT * INTO now_ FROM oracle.paper_wallet_effect(NEW.mode, NEW.side, NEW.filled_amount,
                                                     NEW.filled_amount_quote, NEW.fee_paid);
  IF TG_OP = 'UPDATE' THEN
    SELECT * INTO was FROM oracle.paper_wallet_effect(OLD.mode, OLD.side, OLD.filled_amount,
                                                      OLD.filled_amount_quote, OLD.fee_paid);
    IF was.eur_spent <> 0 OR was.base_held <> 0 THEN
      INSERT INTO oracle.paper_wallet_totals AS t (market, eur_spent, base_held)
      VALUES (OLD.market, -was.eur_spent, -was.base_held)
      ON CONFLICT (market) DO UPDATE
        SET eur_spent = t.eur_spent + EXCLUDED.eur_spent, base_held = t.base_held + EXCLUDED.base_held;
    END IF;
  END IF;
  IF now_.eur_spent <> 0 OR now_.base_held <> 0 THEN
    INSERT INTO oracle.paper_wallet_totals AS t (market, eur_spent, base_held)
    VALUES (NEW.market, now_.eur_spent, now_.base_held)
    ON CONFLICT (market) DO UPDATE
      SET eur_spent = t.eur_spent + EXCLUDED.eur_spent, base_held = t.base_held + EXCLUDED.base_held;
  END IF;
  RETURN NULL;
END
$$;
ALTER FUNCTION oracle.paper_wallet_follow() OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.paper_wallet_follow() FROM PUBLIC;

CREATE TRIGGER trade_executions_paper_wallet
  AFTER INSERT OR UPDATE OF filled_amount, filled_amount_quote, fee_paid ON oracle.trade_executions
  FOR EACH ROW WHEN (NEW.mode = 'paper')
  EXECUTE FUNCTION oracle.paper_wallet_follow();

CREATE OR REPLACE FUNCTION oracle.paper_wallet(p_market text)
  RETURNS TABLE (eur_spent numeric, base_held numeric)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(sum(t.eur_spent), 0), COALESCE(sum(t.base_held) FILTER (WHERE t.market = p_market), 0)
    FROM oracle.paper_wallet_totals t
$$;

CREATE FUNCTION oracle.lock_account_for_claim(p_mode text, p_side text, p_market text,
                                              p_day_start timestamptz, p_day_end timestamptz,
                                              p_balance_at timestamptz)
  RETURNS TABLE (trading_enabled boolean, daily_notional_cap_eur numeric, daily_loss_limit_eur numeric,
                 trading_state text, notional_today_eur numeric, in_flight_eur numeric)
  LANGUAGE plpgsql VOLATILE
  SET search_path = oracle, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  a record;
BEGIN
  SELECT s.trading_enabled, s.daily_notional_cap_eur, s.daily_loss_limit_eur, s.trading_state INTO a
    FROM oracle.account_settings s WHERE s.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'oracle.account_settings has no row: run the migrations';
  END IF;
  -- a new statement, so a new snapshot: every claim committed before the lock was granted counts
  RETURN QUERY
    SELECT a.trading_enabled, a.daily_notional_cap_eur, a.daily_loss_limit_eur, a.trading_state,
           (SELECT n.claimed_eur FROM oracle.account_notional(p_mode, p_day_start, p_day_end) n),
           oracle.account_in_flight_eur(p_mode, p_side, p_market, p_balance_at);
END
$$;
REVOKE ALL ON FUNCTION oracle.lock_account_for_claim(text, text, text, timestamptz, timestamptz, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.lock_account_for_claim(text, text, text, timestamptz, timestamptz, timestamptz)
  TO oracle_executor;
