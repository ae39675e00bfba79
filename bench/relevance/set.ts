// The labelled relevance set (set.json beside this file; README.md says how it was written): its
// shape, reading it, and the checks that keep its labels pointing at rows that exist.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Grades } from './metrics.js';

export const SET_FILE = fileURLToPath(new URL('./set.json', import.meta.url));

/** A row shaped like the demo products table, with the id it is inserted under. */
export interface LabelledProduct {
  id: number;
  name: string;
  description: string;
  category: string;
  price: number;
  in_stock: boolean;
}

export interface LabelledQuery {
  id: string;
  text: string;
  /** Rows that are what the query asks for (grade 2). */
  relevant: number[];
  /** Rows a searcher would accept, not what was asked for (grade 1). */
  partial: number[];
  /** Rows written to share the query's words but not its meaning (grade 0): keyword traps. */
  traps: number[];
}

export interface RelevanceSet {
  queries: LabelledQuery[];
  products: LabelledProduct[];
}

export async function readRelevanceSet(file = SET_FILE): Promise<RelevanceSet> {
  return JSON.parse(await readFile(file, 'utf8')) as RelevanceSet;
}

/** A query's labels as the metrics take them. */
export const gradesOf = (q: LabelledQuery): Grades =>
  new Map([
    ...q.partial.map((id) => [id, 1] as const),
    ...q.relevant.map((id) => [id, 2] as const),
  ]);

/** What is wrong with a set, one sentence each; empty when it can be scored. */
export function setProblems(set: RelevanceSet): string[] {
  const problems: string[] = [];
  const duplicates = <T>(values: readonly T[]): T[] =>
    values.filter((v, i) => values.indexOf(v) !== i);
  const ids = new Set(set.products.map((p) => p.id));
  for (const id of new Set(duplicates(set.products.map((p) => p.id))))
    problems.push(`product id ${id} is used twice`);
  for (const p of set.products) {
    if (!Number.isInteger(p.id) || p.id < 1) problems.push(`product id ${p.id} is not an id`);
    if (!p.name.trim() || !p.description.trim() || !p.category.trim())
      problems.push(`product ${p.id} lacks a name, description or category`);
    if (!(p.price > 0)) problems.push(`product ${p.id} has no price`);
    if (typeof p.in_stock !== 'boolean') problems.push(`product ${p.id}: in_stock is not boolean`);
  }
  for (const text of new Set(duplicates(set.products.map((p) => `${p.name}\n${p.description}`))))
    problems.push(`product "${text.split('\n')[0]}" is written twice`);
  for (const id of new Set(duplicates(set.queries.map((q) => q.id))))
    problems.push(`query id ${id} is used twice`);
  for (const text of new Set(duplicates(set.queries.map((q) => q.text.trim().toLowerCase()))))
    problems.push(`query "${text}" is asked twice`);
  for (const q of set.queries) {
    if (!q.text.trim()) problems.push(`query ${q.id} has no text`);
    if (q.relevant.length === 0) problems.push(`query ${q.id} has no relevant row`);
    const labelled = [...q.relevant, ...q.partial, ...q.traps];
    for (const id of new Set(duplicates(labelled)))
      problems.push(`query ${q.id} labels row ${id} twice`);
    for (const id of labelled.filter((id) => !ids.has(id)))
      problems.push(`query ${q.id} labels row ${id}, which does not exist`);
  }
  return problems;
}
