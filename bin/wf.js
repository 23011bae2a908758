#!/usr/bin/env node
// The `wf` command: loads the TypeScript sources through tsx so no build step is needed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
