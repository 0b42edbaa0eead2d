-- purpose: the species filters' decision per deployment, BirdNET week and species
-- inputs: species_occurrence, deployments, settings
-- species_filter: one row per deployment, BirdNET week (1-48, four per month, of the windows'
-- local dates) and BirdNET species: the meta-model's occurrence probability, the threshold, and
-- whether the species is kept in detections and exports (and why not). Include/exclude lists
-- also hide species BirdNET does not know; those have no row here.
create or replace view species_filter as
with threshold as (
    select cast(value as double) as min_occurrence
    from settings
    where key = 'location_filter_threshold'
),

final as (
    select
        o.deployment_id,
        o.week,
        o.scientific_name,
        o.label,
        o.occurrence,
        t.min_occurrence as threshold,
        case
            when coalesce(list_contains(d.species_exclude, lower(o.scientific_name))
                          or list_contains(d.species_exclude, lower(o.label)), false)
                then 'excluded by the deployment'
            when d.species_include is not null
                and not coalesce(list_contains(d.species_include, lower(o.scientific_name))
                                 or list_contains(d.species_include, lower(o.label)), false)
                then 'not in the deployment''s include list'
            when o.occurrence < t.min_occurrence then 'unlikely at this place and week'
        end as hidden_because,
        hidden_because is null as kept,
        o.model_id,
        o.run_id
    from species_occurrence as o
    cross join threshold as t
    left join deployments as d on d.deployment_id = o.deployment_id
)

select * from final;
