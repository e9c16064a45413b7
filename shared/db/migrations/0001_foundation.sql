-- Foundation schema: every table of the design brief (section 4), one least-privilege role per
-- service, row-level security keyed on the transaction-local setting app.user_id, and the narrow
-- SECURITY DEFINER functions through which cross-user work goes.
--
-- Roles are cluster-wide and may already exist (a second database, a re-run): create them only
-- when missing. Passwords are set by the operator outside migrations (never in the repository).

DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['oracle_scanner', 'oracle_executor', 'oracle_budget'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOINHERIT', r);
    END IF;
  END LOOP;
  -- Owns the SECURITY DEFINER functions; never logs in. Its row-level policies let those
  -- functions see across users, which no service role can do on its own.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'oracle_definer') THEN
    CREATE ROLE oracle_definer NOLOGIN;
  END IF;
END $$;

-- The migrator must be able to hand functions to oracle_definer.
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'oracle_definer', 'MEMBER') THEN
    EXECUTE format('GRANT oracle_definer TO %I', current_user);
  END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS oracle;
GRANT USAGE ON SCHEMA oracle TO oracle_scanner, oracle_executor, oracle_budget, oracle_definer;
REVOKE CREATE ON SCHEMA oracle FROM PUBLIC;

-- The one definition of "the current user" for row-level security. NULL when unset, so
-- `user_id = oracle.app_user()` is never true without a user: zero rows, never all.
CREATE OR REPLACE FUNCTION oracle.app_user() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('app.user_id', true), '') $$;

-- A user id is short and plain: no whitespace, no control characters.
CREATE DOMAIN oracle.user_id AS text
  CHECK (VALUE ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$');

CREATE DOMAIN oracle.market AS text
  CHECK (VALUE ~ '^[A-Z0-9]{1,16}-EUR$');

CREATE DOMAIN oracle.confidence AS integer
  CHECK (VALUE IN (0, 25, 50, 75, 100));

CREATE DOMAIN oracle.side AS text
  CHECK (VALUE IN ('buy', 'sell'));

-- ---------------------------------------------------------------- executor: policies
CREATE TABLE oracle.trading_policies (
  user_id                 oracle.user_id PRIMARY KEY,
  version                 bigint        NOT NULL DEFAULT 1 CHECK (version >= 1),
  allowed_markets         oracle.market[] NOT NULL DEFAULT '{}',
  min_order_eur           numeric(20, 2) NOT NULL CHECK (min_order_eur >= 0),
  max_order_eur           numeric(20, 2) NOT NULL,
  min_confidence          oracle.confidence NOT NULL,
  cooldown_seconds        integer       NOT NULL CHECK (cooldown_seconds >= 0),
  anti_flip_seconds       integer       NOT NULL CHECK (anti_flip_seconds >= 0),
  daily_trade_cap         integer       NOT NULL CHECK (daily_trade_cap >= 0),
  hourly_trade_cap        integer       NOT NULL CHECK (hourly_trade_cap >= 0),
  daily_notional_cap_eur  numeric(20, 2) NOT NULL CHECK (daily_notional_cap_eur >= 0),
  price_guard_pct         numeric(7, 3) NOT NULL CHECK (price_guard_pct >= 0 AND price_guard_pct <= 100),
  auto_execute            boolean       NOT NULL DEFAULT false,
  trading_enabled         boolean       NOT NULL DEFAULT true,
  updated_at              timestamptz   NOT NULL DEFAULT now(),
  updated_by              text          NOT NULL DEFAULT '',
  CHECK (max_order_eur >= min_order_eur)
);

-- Account-wide settings of the deployment's one exchange account (a single row).
CREATE TABLE oracle.account_settings (
  id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
  trading_enabled  boolean     NOT NULL DEFAULT true,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  updated_by       text        NOT NULL DEFAULT ''
);
INSERT INTO oracle.account_settings (id) VALUES (true) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------- scanner: jobs and proposals
CREATE TABLE oracle.scan_jobs (
  job_id            uuid        PRIMARY KEY,
  user_id           oracle.user_id NOT NULL,
  markets           oracle.market[] NOT NULL CHECK (cardinality(markets) BETWEEN 1 AND 50),
  interval_seconds  integer     NOT NULL CHECK (interval_seconds >= 1),
  analyst           text        NOT NULL CHECK (analyst IN ('rules', 'llm')),
  paused            boolean     NOT NULL DEFAULT false,
  next_run_at       timestamptz NOT NULL,
  locked_by         text,
  lock_expires_at   timestamptz,
  fencing_token     bigint      NOT NULL DEFAULT 0,
  attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error        text        NOT NULL DEFAULT '',
  last_run_at       timestamptz,
  heartbeat_at      timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scan_jobs_due ON oracle.scan_jobs (next_run_at) WHERE NOT paused;
CREATE INDEX scan_jobs_user ON oracle.scan_jobs (user_id, created_at);

CREATE TABLE oracle.trade_proposals (
  proposal_id      uuid        PRIMARY KEY,
  user_id          oracle.user_id NOT NULL,
  job_id           uuid,
  market           oracle.market NOT NULL,
  side             oracle.side NOT NULL,
  amount_quote     numeric(20, 2) NOT NULL CHECK (amount_quote > 0),
  confidence       oracle.confidence NOT NULL,
  rationale        text        NOT NULL DEFAULT '' CHECK (length(rationale) <= 4000),
  analyst          text        NOT NULL CHECK (analyst IN ('rules', 'llm')),
  model            text        NOT NULL,
  market_snapshot  jsonb       NOT NULL,
  policy_snapshot  jsonb       NOT NULL,
  status           text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'expired')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  fencing_token    bigint,
  UNIQUE (user_id, proposal_id),
  CHECK (expires_at > created_at)
);
CREATE INDEX trade_proposals_user_created ON oracle.trade_proposals (user_id, created_at DESC);
CREATE INDEX trade_proposals_open_expiry ON oracle.trade_proposals (expires_at) WHERE status = 'open';

-- ---------------------------------------------------------------- executor: executions
CREATE TABLE oracle.trade_executions (
  execution_id        uuid        PRIMARY KEY,
  user_id             oracle.user_id NOT NULL,
  proposal_id         uuid        NOT NULL,
  mode                text        NOT NULL CHECK (mode IN ('live', 'paper')),
  market              oracle.market NOT NULL,
  side                oracle.side NOT NULL,
  amount_quote        numeric(20, 2) NOT NULL CHECK (amount_quote > 0),
  status              text        NOT NULL CHECK (status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED',
                        'PARTIALLY_FILLED', 'FILLED', 'CANCELED', 'UNKNOWN', 'FAILED')),
  client_order_id     uuid        NOT NULL UNIQUE,
  exchange_order_id   text,
  filled_amount       numeric(38, 18) NOT NULL DEFAULT 0 CHECK (filled_amount >= 0),
  filled_amount_quote numeric(38, 18) NOT NULL DEFAULT 0 CHECK (filled_amount_quote >= 0),
  fee_paid            numeric(38, 18) NOT NULL DEFAULT 0,
  fee_currency        text        NOT NULL DEFAULT '',
  override_cooldown   boolean     NOT NULL DEFAULT false,
  override_anti_flip  boolean     NOT NULL DEFAULT false,
  principal           text        NOT NULL,
  preflight           jsonb       NOT NULL,
  request             jsonb,
  response            jsonb,
  error               jsonb,
  claimed_at          timestamptz NOT NULL,
  submitting_at       timestamptz,
  updated_at          timestamptz NOT NULL,
  -- Guarantee 1: one proposal, at most one execution, whatever the number of callers.
  UNIQUE (user_id, proposal_id),
  FOREIGN KEY (user_id, proposal_id) REFERENCES oracle.trade_proposals (user_id, proposal_id)
);
-- Cooldown / anti-flip / caps / notional read by (user, market, claim time) and (user, claim time).
CREATE INDEX trade_executions_user_market_claimed ON oracle.trade_executions (user_id, market, claimed_at DESC);
CREATE INDEX trade_executions_user_claimed ON oracle.trade_executions (user_id, claimed_at DESC);
CREATE INDEX trade_executions_unresolved ON oracle.trade_executions (updated_at)
  WHERE status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN');
CREATE INDEX trade_executions_claimed_day ON oracle.trade_executions (claimed_at);

CREATE TABLE oracle.trade_history (
  execution_id   uuid        NOT NULL REFERENCES oracle.trade_executions (execution_id),
  fill_id        text        NOT NULL,
  user_id        oracle.user_id NOT NULL,
  market         oracle.market NOT NULL,
  side           oracle.side NOT NULL,
  amount         numeric(38, 18) NOT NULL CHECK (amount > 0),
  price          numeric(38, 18) NOT NULL CHECK (price > 0),
  fee            numeric(38, 18) NOT NULL DEFAULT 0,
  fee_currency   text        NOT NULL DEFAULT '',
  taker          boolean     NOT NULL DEFAULT true,
  filled_at      timestamptz NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (execution_id, fill_id)
);
CREATE INDEX trade_history_user_time ON oracle.trade_history (user_id, filled_at DESC);

-- ---------------------------------------------------------------- budget
CREATE TABLE oracle.budget_limits (
  user_id            oracle.user_id PRIMARY KEY,
  daily_calls        bigint NOT NULL CHECK (daily_calls >= 0),
  hourly_calls       bigint NOT NULL CHECK (hourly_calls >= 0),
  daily_tokens       bigint NOT NULL DEFAULT 0 CHECK (daily_tokens >= 0),
  daily_cost_micros  bigint NOT NULL DEFAULT 0 CHECK (daily_cost_micros >= 0),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (hourly_calls <= daily_calls)
);

CREATE TABLE oracle.gpt_usage_log (
  reservation_id         uuid        PRIMARY KEY,
  user_id                oracle.user_id NOT NULL,
  purpose                text        NOT NULL CHECK (length(purpose) BETWEEN 1 AND 200),
  model                  text        NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
  status                 text        NOT NULL CHECK (status IN ('reserved', 'committed', 'released', 'expired')),
  max_tokens             bigint      NOT NULL CHECK (max_tokens > 0),
  estimated_tokens       bigint      NOT NULL CHECK (estimated_tokens > 0),
  estimated_cost_micros  bigint      NOT NULL CHECK (estimated_cost_micros >= 0),
  prompt_tokens          bigint      CHECK (prompt_tokens >= 0),
  completion_tokens      bigint      CHECK (completion_tokens >= 0),
  cost_micros            bigint      CHECK (cost_micros >= 0),
  reserved_at            timestamptz NOT NULL,
  expires_at             timestamptz NOT NULL,
  committed_at           timestamptz,
  released_at            timestamptz,
  CHECK (expires_at > reserved_at)
);
-- The hot count: a user's rows by reservation time.
CREATE INDEX gpt_usage_log_user_reserved ON oracle.gpt_usage_log (user_id, reserved_at DESC);
CREATE INDEX gpt_usage_log_expiring ON oracle.gpt_usage_log (expires_at) WHERE status = 'reserved';

-- ---------------------------------------------------------------- audit (append-only, hash-chained)
CREATE TABLE oracle.audit_events (
  event_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id      text        NOT NULL CHECK (user_id = '_system' OR user_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$'),
  sequence     bigint      NOT NULL CHECK (sequence >= 1),
  service      text        NOT NULL CHECK (service IN ('scanner', 'executor', 'budget')),
  kind         text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
  subject_id   text        NOT NULL DEFAULT '',
  principal    text        NOT NULL DEFAULT '',
  payload      jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  prev_hash    text        NOT NULL,
  hash         text        NOT NULL,
  UNIQUE (user_id, sequence)
);
CREATE INDEX audit_events_subject ON oracle.audit_events (user_id, subject_id, sequence);

-- Nobody updates or deletes the audit trail, not even the owner: grants say so, and so does this.
CREATE OR REPLACE FUNCTION oracle.audit_events_immutable() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON oracle.audit_events
  FOR EACH ROW EXECUTE FUNCTION oracle.audit_events_immutable();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON oracle.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION oracle.audit_events_immutable();

-- Appends one event to the current user's chain. The chain is serialized per user by a
-- transaction-scoped advisory lock (namespace 2 = audit chain), so concurrent writers from any
-- service get consecutive sequence numbers and each hash covers its predecessor.
CREATE OR REPLACE FUNCTION oracle.append_audit_event(
  p_service text, p_kind text, p_subject_id text, p_principal text, p_payload jsonb)
  RETURNS bigint
  LANGUAGE plpgsql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
DECLARE
  v_user text := oracle.app_user();
  v_prev record;
  v_seq bigint;
  v_prev_hash text;
  v_hash text;
  v_at timestamptz := clock_timestamp();
BEGIN
  IF v_user IS NULL THEN
    RAISE EXCEPTION 'append_audit_event needs app.user_id' USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pg_advisory_xact_lock(2, hashtext(v_user));
  SELECT sequence, hash INTO v_prev FROM oracle.audit_events
    WHERE user_id = v_user ORDER BY sequence DESC LIMIT 1;
  v_seq := COALESCE(v_prev.sequence, 0) + 1;
  v_prev_hash := COALESCE(v_prev.hash, '');
  v_hash := encode(sha256(convert_to(
    v_prev_hash || '|' || v_user || '|' || v_seq || '|' || p_service || '|' || p_kind || '|' ||
    COALESCE(p_subject_id, '') || '|' || COALESCE(p_principal, '') || '|' || p_payload::text || '|' ||
    to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), 'UTF8')), 'hex');
  INSERT INTO oracle.audit_events (user_id, sequence, service, kind, subject_id, principal, payload,
                                   created_at, prev_hash, hash)
  VALUES (v_user, v_seq, p_service, p_kind, COALESCE(p_subject_id, ''), COALESCE(p_principal, ''),
          p_payload, v_at, v_prev_hash, v_hash);
  RETURN v_seq;
END $$;

-- ---------------------------------------------------------------- row-level security
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['trading_policies', 'scan_jobs', 'trade_proposals', 'trade_executions',
                           'trade_history', 'budget_limits', 'gpt_usage_log', 'audit_events'] LOOP
    EXECUTE format('ALTER TABLE oracle.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE oracle.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY own_rows ON oracle.%I USING (user_id = oracle.app_user()) '
                   'WITH CHECK (user_id = oracle.app_user())', t);
    EXECUTE format('CREATE POLICY cross_user_definer ON oracle.%I TO oracle_definer USING (true) '
                   'WITH CHECK (true)', t);
  END LOOP;
END $$;

-- ---------------------------------------------------------------- grants (docs/database.md)
REVOKE ALL ON ALL TABLES IN SCHEMA oracle FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA oracle FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.app_user() TO oracle_scanner, oracle_executor, oracle_budget, oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.append_audit_event(text, text, text, text, jsonb)
  TO oracle_scanner, oracle_executor, oracle_budget;

GRANT SELECT ON oracle.trading_policies TO oracle_scanner;
GRANT SELECT, INSERT, UPDATE ON oracle.scan_jobs TO oracle_scanner;
GRANT DELETE ON oracle.scan_jobs TO oracle_scanner;
GRANT SELECT, INSERT, UPDATE ON oracle.trade_proposals TO oracle_scanner;

GRANT SELECT, INSERT, UPDATE ON oracle.trading_policies TO oracle_executor;
GRANT SELECT, UPDATE ON oracle.account_settings TO oracle_executor;
GRANT SELECT ON oracle.account_settings TO oracle_scanner;
GRANT SELECT ON oracle.trade_proposals TO oracle_executor;
GRANT SELECT, INSERT, UPDATE ON oracle.trade_executions TO oracle_executor;
GRANT SELECT, INSERT ON oracle.trade_history TO oracle_executor;

GRANT SELECT, INSERT, UPDATE ON oracle.budget_limits TO oracle_budget;
GRANT SELECT, INSERT, UPDATE ON oracle.gpt_usage_log TO oracle_budget;

GRANT SELECT, INSERT ON oracle.audit_events TO oracle_scanner, oracle_executor, oracle_budget;

-- What the cross-user functions need, and nothing else.
GRANT SELECT, UPDATE ON oracle.scan_jobs TO oracle_definer;
GRANT SELECT, UPDATE ON oracle.trade_proposals TO oracle_definer;
GRANT SELECT ON oracle.trade_executions TO oracle_definer;
GRANT SELECT, UPDATE ON oracle.gpt_usage_log TO oracle_definer;

-- ---------------------------------------------------------------- cross-user functions
-- Each returns ids only (or an aggregate); the caller then handles each row in a transaction
-- for its user. search_path is pinned, as every SECURITY DEFINER function must.

-- Claims up to p_limit due scan jobs for one scanner instance: due and unpaused, and either
-- unleased or with an expired lease (crash recovery needs no separate cleanup). Every claim
-- increments the fencing token; SKIP LOCKED keeps concurrent claimers off each other's rows.
CREATE OR REPLACE FUNCTION oracle.claim_due_scan_jobs(p_instance text, p_limit integer,
                                                      p_lease_seconds integer, p_now timestamptz)
  RETURNS TABLE (job_id uuid, user_id text, fencing_token bigint)
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH due AS (
    SELECT j.job_id FROM oracle.scan_jobs j
     WHERE NOT j.paused AND j.next_run_at <= p_now
       AND (j.lock_expires_at IS NULL OR j.lock_expires_at <= p_now)
     ORDER BY j.next_run_at
     LIMIT GREATEST(p_limit, 0)
     FOR UPDATE SKIP LOCKED
  )
  UPDATE oracle.scan_jobs s
     SET locked_by = p_instance,
         lock_expires_at = p_now + make_interval(secs => p_lease_seconds),
         fencing_token = s.fencing_token + 1,
         heartbeat_at = p_now
    FROM due
   WHERE s.job_id = due.job_id
  RETURNING s.job_id, s.user_id::text, s.fencing_token
$$;
ALTER FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz) OWNER TO oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz) TO oracle_scanner;

-- Marks open proposals past their expiry as expired, across users; returns how many.
CREATE OR REPLACE FUNCTION oracle.expire_due_proposals(p_now timestamptz)
  RETURNS integer
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH e AS (
    UPDATE oracle.trade_proposals SET status = 'expired'
     WHERE status = 'open' AND expires_at <= p_now
    RETURNING 1)
  SELECT count(*)::integer FROM e
$$;
ALTER FUNCTION oracle.expire_due_proposals(timestamptz) OWNER TO oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.expire_due_proposals(timestamptz) TO oracle_scanner;

-- Executions the reconciler must look at: every non-terminal one, oldest first.
CREATE OR REPLACE FUNCTION oracle.unresolved_executions(p_limit integer)
  RETURNS TABLE (execution_id uuid, user_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT e.execution_id, e.user_id::text FROM oracle.trade_executions e
   WHERE e.status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN')
   ORDER BY e.updated_at
   LIMIT GREATEST(p_limit, 0)
$$;
ALTER FUNCTION oracle.unresolved_executions(integer) OWNER TO oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.unresolved_executions(integer) TO oracle_executor;

-- Account-wide figures for the one exchange account, across users: EUR claimed in [p_from, p_to)
-- by executions that count (every status but FAILED and zero-fill CANCELED), and EUR of buys
-- still in flight (claimed, not yet final) for the balance check.
CREATE OR REPLACE FUNCTION oracle.account_notional(p_mode text, p_from timestamptz, p_to timestamptz)
  RETURNS TABLE (claimed_eur numeric, in_flight_buy_eur numeric)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT
    COALESCE(sum(e.amount_quote) FILTER (
      WHERE e.claimed_at >= p_from AND e.claimed_at < p_to
        AND e.status <> 'FAILED' AND NOT (e.status = 'CANCELED' AND e.filled_amount = 0)), 0),
    COALESCE(sum(e.amount_quote) FILTER (
      WHERE e.side = 'buy'
        AND e.status IN ('CLAIMED', 'SUBMITTING', 'SUBMITTED', 'PARTIALLY_FILLED', 'UNKNOWN')), 0)
  FROM oracle.trade_executions e
  WHERE e.mode = p_mode
$$;
ALTER FUNCTION oracle.account_notional(text, timestamptz, timestamptz) OWNER TO oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.account_notional(text, timestamptz, timestamptz) TO oracle_executor;

-- Marks reservations past their TTL as expired, across users; they keep counting.
CREATE OR REPLACE FUNCTION oracle.expire_stale_reservations(p_now timestamptz)
  RETURNS integer
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH e AS (
    UPDATE oracle.gpt_usage_log SET status = 'expired'
     WHERE status = 'reserved' AND expires_at <= p_now
    RETURNING 1)
  SELECT count(*)::integer FROM e
$$;
ALTER FUNCTION oracle.expire_stale_reservations(timestamptz) OWNER TO oracle_definer;
GRANT EXECUTE ON FUNCTION oracle.expire_stale_reservations(timestamptz) TO oracle_budget;
