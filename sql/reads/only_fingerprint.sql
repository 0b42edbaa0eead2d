-- purpose: the catalog's only config fingerprint, or NULL when it holds none or several
-- (then the analyses need one chosen: SET VARIABLE config_fingerprint = '...')
select case when count(distinct config_fingerprint) = 1 then any_value(config_fingerprint) end
from windows
