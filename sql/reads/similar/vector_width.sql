-- purpose: the width of one stored vector of a fingerprint (`dawnchorus similar` and `learn`
-- check every vector they read against it)
-- grain: one row (a float32 list's length, or a float16 BLOB's bytes / 2)
-- parameters: $config_fingerprint
-- inputs: embeddings
select coalesce(len(vector), octet_length(vector_f16) // 2) as dim
from embeddings
where config_fingerprint = $config_fingerprint
limit 1
