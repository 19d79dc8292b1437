-- What the console shows of a succeeded version's episodes beyond their centroids: per episode, the
-- entries its cache holds (in all and per layer over the KV heads) and the start of its
-- representative text, as JSON [{entries, layerEntries, representative}] in the runner's episode
-- order. Kept apart from `episodes`, which every question reads. NULL for versions stored before
-- this migration, and from runners that do not report them.
ALTER TABLE versions ADD COLUMN episode_details TEXT;
