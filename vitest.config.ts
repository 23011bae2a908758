import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'dsl/**/*.test.ts', 'engine/**/*.test.ts', 'server/**/*.test.ts', 'cli/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
