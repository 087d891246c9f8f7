-- An adaptive share of each global budget (analyzer_runtime/ratelimit.py): a
-- provider whose real limit is below `requests` answers 429; the budget then allows
-- fewer requests per window (`allowed`, multiplicative decrease) and recovers
-- additively, never above `requests`.
ALTER TABLE rate_limits
    ADD COLUMN allowed      integer,
    ADD COLUMN decreased_at timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN adjusted_at  timestamptz NOT NULL DEFAULT '-infinity';
UPDATE rate_limits SET allowed = requests;
ALTER TABLE rate_limits ALTER COLUMN allowed SET NOT NULL;
ALTER TABLE rate_limits ADD CHECK (allowed >= 1 AND allowed <= requests);
