-- purpose: the width of one stored vector of a fingerprint (`dawnchorus similar` and `learn`
-- check every vector they read against it)
-- grain: one row
-- parameters: $config_fingerprint
-- inputs: embeddings
select len(vector) as dim
from embeddings
where config_fingerprint = $config_fingerprint
limit 1
