// The declared shape of a pipeline, validated once at the edge (the config file) and stored in the catalog.
import { z } from 'zod';
import { createHash } from 'node:crypto';

export const PIPELINE_NAME = /^[a-z][a-z0-9_]{0,39}$/;

const embedColumn = z.union([
  z.string().min(1),
  z.object({ column: z.string().min(1), prefix: z.string().default('') }).strict(),
]);

const offlineEmbedding = z
  .object({
    provider: z.literal('offline'),
    model: z.literal('feature-hash-v1').default('feature-hash-v1'),
    dimensions: z.number().int().min(8).max(4000).default(256),
  })
  .strict();

export const pipelineSchema = z
  .object({
    name: z.string().regex(PIPELINE_NAME, 'must be lower case letters, digits and _, starting with a letter (at most 40)'),
    source: z
      .object({
        table: z.string().min(1),
        /** Defaults to the table's primary key; when given it must be that key. */
        primaryKey: z.array(z.string().min(1)).min(1).optional(),
      })
      .strict(),
    embed: z
      .object({
        columns: z.array(embedColumn).min(1, 'must not be empty'),
        /** Placed between the columns' texts. */
        separator: z.string().default('\n'),
      })
      .strict(),
    metadata: z.array(z.string().min(1)).default([]),
    embedding: z.discriminatedUnion('provider', [offlineEmbedding]),
    chunking: z
      .object({
        /** Longest chunk, in characters. */
        size: z.number().int().min(64).max(100_000).default(2000),
        /** Characters each chunk repeats from the end of the one before. */
        overlap: z.number().int().min(0).default(200),
      })
      .strict()
      .refine((c) => c.overlap < c.size / 2, { message: 'overlap must be less than half of size', path: ['overlap'] })
      .default({ size: 2000, overlap: 200 }),
    /** Where the vectors go; defaults to <source schema>.<name>_embeddings. */
    vectorTable: z.string().min(1).optional(),
    /** halfvec halves storage and allows HNSW up to 4,000 dimensions (vector: 2,000). */
    vectorType: z.enum(['vector', 'halfvec']).default('vector'),
    /** Most source keys one sync workflow handles. */
    batchSize: z.number().int().min(1).max(5000).default(200),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.vectorType === 'vector' && p.embedding.dimensions > 2000) {
      ctx.addIssue({ code: 'custom', path: ['vectorType'], message: `HNSW indexes vector up to 2,000 dimensions; use "halfvec" for ${p.embedding.dimensions}` });
    }
  });

export const configFileSchema = z
  .object({ pipelines: z.array(pipelineSchema).min(1, 'must declare at least one pipeline') })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.pipelines.forEach((p, i) => {
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['pipelines', i, 'name'], message: `duplicate pipeline name "${p.name}" (also pipelines[${first}])` });
      }
      seen.set(p.name, i);
    });
  });

export type PipelineConfig = z.infer<typeof pipelineSchema>;
export type PipelineInput = z.input<typeof pipelineSchema>;
export interface EmbedColumn { column: string; prefix: string }

export function embedColumns(config: PipelineConfig): EmbedColumn[] {
  return config.embed.columns.map((c) => (typeof c === 'string' ? { column: c, prefix: '' } : c));
}

/** The settings that decide what a vector is. Two configs with the same fingerprint give the same vectors. */
export function embeddingFingerprint(config: PipelineConfig): string {
  const relevant = {
    columns: embedColumns(config),
    separator: config.embed.separator,
    embedding: config.embedding,
    chunking: config.chunking,
    vectorType: config.vectorType,
  };
  return createHash('sha256').update(canonicalJson(relevant)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted: the catalog's jsonb reorders keys, and equal configs must compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Turns a zod path into the field name users see: pipelines[2].embed.columns. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
}

export class ConfigError extends Error {
  constructor(readonly field: string, readonly detail: string) {
    super(field ? `${field}: ${detail}` : detail);
    this.name = 'ConfigError';
  }
}

export function parsePipelines(raw: unknown): PipelineConfig[] {
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(fieldPath(issue?.path ?? []), issue?.message ?? 'invalid');
  }
  return parsed.data.pipelines;
}
