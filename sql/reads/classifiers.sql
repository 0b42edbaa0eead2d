-- purpose: every classifier version the catalog holds, oldest first
-- grain: one row per classifier version
-- inputs: classifiers
select *
from classifiers
order by name, version
