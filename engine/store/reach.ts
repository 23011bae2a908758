/**
 * Which cases an actor's work reaches, as SQL shared by the queries that ask it (the inbox's
 * candidates and the case ledger's `visibleTo`): a case whose responsible unit lies in the subtree
 * of a unit where the actor holds a role, a case the actor submitted, and a case whose data names
 * the actor or such a unit in a top-level field or list (`case.党员`, `case.单位`, `case.被叫部门`).
 */

/**
 * A `held(id)` member of a `with recursive` clause: the units where the actor given by the
 * parameter `actor` (e.g. `'$1'`) holds a role, and every unit below them; none for a null actor.
 * @example `with recursive ${heldUnitsCte('$1')} select … where ${reachesCase('c', '$1')}`
 */
export function heldUnitsCte(actor: string): string {
  return `held(id) as (
       select org_unit_id from actor_roles where ${actor}::text is not null and actor_id = ${actor}
       union
       select u.id from org_units u join held h on u.parent_id = h.id
     )`;
}

/**
 * A condition true when the case row `alias` is within the reach of the actor `actor`; needs
 * {@link heldUnitsCte} of the same actor in the statement's `with recursive` clause.
 * @example reachesCase('k', '$10')
 */
export function reachesCase(alias: string, actor: string): string {
  // The names a data value may hold (the actor, a held unit) are gathered once per statement and
  // the data asked with one jsonpath test that stops at the first match: listing every value
  // (jsonb_path_query) and comparing each was 2-3 times dearer, and it runs on every case a page
  // looks at (an actor whose reach holds none of 80,000 active cases looks at all of them).
  return `(${alias}.org_unit_id in (select id from held)
             or ${alias}.snapshot->>'submitter' = ${actor}
             or jsonb_path_exists(${alias}.data, 'lax $.* ? (@.type() == "string" && @ == $names[*])',
                  (select jsonb_build_object('names', coalesce(jsonb_agg(id), '[]'::jsonb) || to_jsonb(${actor}::text)) from held)))`;
}
