-- How questions are routed to a version's episodes (shared routeQuestion): 'centroid', 'window' or
-- 'vote'. NULL for versions stored before routing rules, and for runners that report none: those are
-- routed by centroid.
ALTER TABLE versions ADD COLUMN routing_rule TEXT CHECK (routing_rule IN ('centroid', 'window', 'vote'));
-- With routing_rule 'vote': how many of the nearest windows vote.
ALTER TABLE versions ADD COLUMN routing_k INTEGER;

-- The window vectors a 'window' or 'vote' version routes by, in chunks of consecutive windows so
-- that no row nears D1's 2 MB limit (a long conversation has thousands of windows).
--   vectors   int8 in base64 (shared encodeWindowVectors): embedder_dimension bytes per window
--   episodes  JSON [episode index] of the chunk's windows: positions in the version's `episodes`
-- Only the active version and the one active before it keep theirs (versions.ts, completeVersion).
CREATE TABLE version_windows (
  tenant_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  version TEXT NOT NULL,
  chunk INTEGER NOT NULL,
  vectors TEXT NOT NULL,
  episodes TEXT NOT NULL,
  PRIMARY KEY (tenant_id, conversation_id, version, chunk),
  FOREIGN KEY (tenant_id, conversation_id, version) REFERENCES versions(tenant_id, conversation_id, version) ON DELETE CASCADE
);
