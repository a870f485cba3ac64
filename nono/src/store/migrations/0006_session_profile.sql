-- Schema 6: the profile a `run` session enforced, as it was resolved then.
--
-- `profile_json` (sessions): the resolved profile, flattened (its `extends`
-- chain folded in, every path expanded as the run expanded it, command-line
-- grants included), as JSON that loads on its own. `profile_hash`: the
-- SHA-256 of that text, in hex. Both NULL for `learn` sessions and for
-- sessions recorded before schema 6. Written once, when the session starts,
-- so a later `profile amend` or `learn --force` of the same file cannot
-- change what `audit show` and `audit report` say the session ran under.

ALTER TABLE sessions ADD COLUMN profile_json TEXT;
ALTER TABLE sessions ADD COLUMN profile_hash TEXT;
