-- Lexical routing (shared routeQuestion's 'lexical': BM25 over each window's terms, falling back to the
-- window vectors). SQLite cannot widen a CHECK constraint in place, so routing_rule is replaced by a
-- column with the wider one and its values copied over: versions stored before keep their rule. (A
-- new table and a copy would work too, but dropping `versions` would cascade to `version_windows`.)
ALTER TABLE versions ADD COLUMN routing_rule_new TEXT CHECK (routing_rule_new IN ('centroid', 'window', 'vote', 'lexical'));
UPDATE versions SET routing_rule_new = routing_rule;
ALTER TABLE versions DROP COLUMN routing_rule;
ALTER TABLE versions RENAME COLUMN routing_rule_new TO routing_rule;

-- With routing_rule 'lexical': JSON [string] of the chunk's windows' terms (shared lexicalTerms, joined
-- by single spaces), in the chunk's window order; NULL for other rules and rows stored before. A chunk
-- holds at most WINDOW_TERMS_CHUNK_CHARS characters of terms (versions.ts) besides its vectors.
ALTER TABLE version_windows ADD COLUMN terms TEXT;
