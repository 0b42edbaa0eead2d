-- purpose: one catalog setting; parameters: $key = key
select value from settings where key = $key
