#!/usr/bin/env node
// The `wf` command: loads the TypeScript sources through tsx, so it never runs a stale build.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
