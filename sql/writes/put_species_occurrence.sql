-- purpose: the meta-model's answers for some (deployment, week) pairs, replacing older answers
-- for the same pairs, in the caller's transaction
-- inputs: _occurrence (species_occurrence rows)
delete from species_occurrence
where exists (
    select 1 from _occurrence as n
    where n.deployment_id = species_occurrence.deployment_id and n.week = species_occurrence.week
);
insert into species_occurrence by name select * from _occurrence;
