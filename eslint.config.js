// Lint: type-aware rules everywhere, and determinism rules for workflow code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.embedsync/**', 'scratch/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // The launcher is plain JavaScript that node runs before TypeScript can be loaded; so is the
    // local model's worker thread, which inherits no TypeScript loader.
    files: ['bin/**/*.js', 'src/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', URL: 'readonly' },
    },
  },
  {
    // Workflow code is replayed: no I/O, no Node built-ins, activity types only.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                'node:*',
                'fs',
                'path',
                'crypto',
                'os',
                'child_process',
                'net',
                'http',
                'https',
              ],
              message: 'Workflows must be deterministic: no Node built-ins.',
            },
            {
              group: [
                'pg',
                'pgvector',
                'pino',
                'openai',
                '@aws-sdk/*',
                '../src/db/*',
                '../src/providers/*',
                '../activities/*',
              ],
              message: 'Workflows may import activity types only.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
