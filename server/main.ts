/**
 * `npm start`. The HTTP service is not built yet; until it is, this says so and points at what
 * works today, rather than failing with a missing-module error.
 */
const lines = [
  'The HTTP service is not built yet.',
  'What works today:',
  '  npx wf check workflows/*.wf      check the seed workflows',
  '  npx wf test                      run their scenarios in memory',
  '  npx wf graph workflows/五单服务.wf --format svg -o 五单服务.svg',
  '  npm test                         the test suite',
];
process.stdout.write(`${lines.join('\n')}\n`);
