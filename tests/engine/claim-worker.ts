// A separate OS process for the claim race: opens its own engine on the given schema, waits for
// the shared start instant, sends one 抢单 per member at once, and prints the outcomes as JSON.
import { Engine } from '../../engine/engine.ts';
import { EngineError } from '../../engine/errors.ts';
import { openDatabase } from '../../engine/store/index.ts';

const [schema, caseId, membersJson, startAtText] = process.argv.slice(2);
const databaseUrl = process.env['DATABASE_URL'];
if (schema === undefined || caseId === undefined || membersJson === undefined || startAtText === undefined || databaseUrl === undefined) {
  process.stderr.write('usage: claim-worker <schema> <caseId> <members json> <startAt ms> (DATABASE_URL set)\n');
  process.exit(2);
}
const members = JSON.parse(membersJson) as string[];
const store = await openDatabase({ databaseUrl, schema, migrate: false, poolSize: 25 });
const engine = new Engine({ store });
await engine.getCase(caseId); // warm the cache and the connections before the start
await engine.org();
const wait = Number(startAtText) - Date.now();
if (wait > 0) await new Promise((r) => setTimeout(r, wait));
const results = await Promise.all(members.map(async (member) => {
  try {
    const c = await engine.sendEvent(caseId, { type: '抢单', actor: member });
    return { member, ok: true, state: c.state };
  } catch (e) {
    if (e instanceof EngineError) return { member, ok: false, code: e.code, status: e.status, state: e.details['state'] ?? null };
    return { member, ok: false, code: String(e) };
  }
}));
process.stdout.write(`${JSON.stringify({ pid: process.pid, results })}\n`);
await store.close();
