-- Scanner: a scan job may ask to keep proposing while the user's trading is off.
--
-- A job's run skips the analysis (no LLM call, no proposal) for a user whose trading is off, in
-- the user's policy or by the global kill switch, and records each market as TRADING_DISABLED
-- (services/scanner/scan.py). A job created with keep_proposing runs its analysts anyway: the
-- proposals are made and kept, and the executor still refuses them while trading is off.
ALTER TABLE oracle.scan_jobs ADD COLUMN keep_proposing boolean NOT NULL DEFAULT false;
