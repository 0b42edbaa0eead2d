-- purpose: one catalog setting; parameters: $1 = key
select value from settings where key = $1
